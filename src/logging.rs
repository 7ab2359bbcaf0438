//! Logs: to the console (stderr) always, and to a daily-rotated file when `[log] file` is set.

use serde::Deserialize;
use std::io::IsTerminal;
use std::path::PathBuf;
use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, EnvFilter, Layer};

/// `[log]`: console logging always; `file` adds a daily-rotated log file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSection {
    /// A level (`info`) or a tracing filter (`info,edgemq=debug`).
    pub level: String,
    pub file: Option<PathBuf>,
}

impl Default for LogSection {
    fn default() -> Self {
        LogSection {
            level: "info".to_string(),
            file: None,
        }
    }
}

impl LogSection {
    pub fn validate(&self) -> Result<(), String> {
        EnvFilter::try_new(&self.level)
            .map(drop)
            .map_err(|e| format!("log.level: `{}` is not a log level: {e}", self.level))
    }
}

/// Installs the global subscriber; keep the guard alive so the file is flushed at exit.
pub fn init(log: &LogSection) -> Result<Option<WorkerGuard>, String> {
    // rumqttd logs every connection at info, and ordinary clean disconnects as ERRORs ("no-
    // connection id N is already gone", "router-drop"); keep its router and connection logs
    // quiet unless asked (`--log-level info,rumqttd=info`). Skips, the one router event that
    // matters, are counted and logged by edgemq itself.
    let mut directives = log.level.clone();
    if !directives.contains("rumqttd") {
        directives
            .push_str(",rumqttd=warn,rumqttd::router::routing=off,rumqttd::server::broker=off");
    }
    let filter = || EnvFilter::try_new(&directives).map_err(|e| format!("log.level: {e}"));
    let ansi = std::io::stderr().is_terminal();
    let console = fmt::layer()
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .with_filter(filter()?);
    let (file_layer, guard) = match &log.file {
        Some(path) => {
            let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
            let dir = dir.unwrap_or(std::path::Path::new("."));
            let name = path
                .file_name()
                .ok_or_else(|| format!("log.file: {} is not a file name", path.display()))?;
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("log.file: cannot create {}: {e}", dir.display()))?;
            let appender = tracing_appender::rolling::daily(dir, name);
            let (writer, guard) = tracing_appender::non_blocking(appender);
            let layer = fmt::layer()
                .with_ansi(false)
                .with_writer(writer)
                .with_filter(filter()?);
            (Some(layer), Some(guard))
        }
        None => (None, None),
    };
    tracing_subscriber::registry()
        .with(console)
        .with(file_layer)
        .try_init()
        .map_err(|e| e.to_string())?;
    Ok(guard)
}
