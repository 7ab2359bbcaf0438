//! Logs: to the console (stderr) always, and to a daily-rotated file when `[log] file` is set.
//! The file is reopened on request (SIGHUP, for logrotate), and `Throttle` keeps a line that
//! repeats many times a second from making logging the bottleneck.

use serde::Deserialize;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing_appender::non_blocking::WorkerGuard;
use tracing_appender::rolling::RollingFileAppender;
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

/// The installed logs: keep `guard` alive so the file is flushed at exit.
pub struct Logs {
    pub guard: Option<WorkerGuard>,
    pub file: LogFile,
}

/// Asks the log file, if there is one, to be reopened before its next line.
#[derive(Clone, Default)]
pub struct LogFile(Option<Arc<AtomicBool>>);

impl LogFile {
    /// Whether there is a file to reopen; it is reopened before the next line is written.
    pub fn reopen(&self) -> bool {
        if let Some(flag) = &self.0 {
            flag.store(true, Relaxed);
        }
        self.0.is_some()
    }
}

/// A daily-rotated file that opens itself anew when asked.
struct Reopenable {
    dir: PathBuf,
    name: PathBuf,
    file: Mutex<RollingFileAppender>,
    reopen: Arc<AtomicBool>,
}

impl Write for &Reopenable {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        if self.reopen.swap(false, Relaxed) {
            *file = tracing_appender::rolling::daily(&self.dir, &self.name);
        }
        file.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.lock().unwrap_or_else(|e| e.into_inner()).flush()
    }
}

/// Installs the global subscriber.
pub fn init(log: &LogSection) -> Result<Logs, String> {
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
    let mut log_file = LogFile::default();
    let (file_layer, guard) = match &log.file {
        Some(path) => {
            let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
            let dir = dir.unwrap_or(std::path::Path::new("."));
            let name = path
                .file_name()
                .ok_or_else(|| format!("log.file: {} is not a file name", path.display()))?;
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("log.file: cannot create {}: {e}", dir.display()))?;
            let reopen = Arc::new(AtomicBool::new(false));
            let file = Arc::new(Reopenable {
                dir: dir.to_path_buf(),
                name: Path::new(name).to_path_buf(),
                file: Mutex::new(tracing_appender::rolling::daily(dir, name)),
                reopen: reopen.clone(),
            });
            let (writer, guard) = tracing_appender::non_blocking(ArcWriter(file));
            log_file = LogFile(Some(reopen));
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
    Ok(Logs {
        guard,
        file: log_file,
    })
}

/// The shared file as the writer `non_blocking` moves to its thread.
struct ArcWriter(Arc<Reopenable>);

impl Write for ArcWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        (&*self.0).write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        (&*self.0).flush()
    }
}

/// Lets the first few of a repeated log line through each second and counts the rest, so one
/// misbehaving peer cannot make logging the bottleneck.
pub struct Throttle {
    per_second: u32,
    window_start: Instant,
    in_window: u32,
    suppressed: u64,
}

impl Throttle {
    pub fn new(per_second: u32) -> Throttle {
        Throttle {
            per_second,
            window_start: Instant::now(),
            in_window: 0,
            suppressed: 0,
        }
    }

    /// Whether to log this one. When a new second starts, `held_back` says how many lines the
    /// last one held back (log that too).
    pub fn allow(&mut self) -> (bool, Option<u64>) {
        let held_back = self.roll();
        self.in_window += 1;
        let allowed = self.in_window <= self.per_second;
        if !allowed {
            self.suppressed += 1;
        }
        (allowed, held_back)
    }

    /// Starts a new second when one has passed; how many lines were held back, if any.
    pub fn roll(&mut self) -> Option<u64> {
        if self.window_start.elapsed() < Duration::from_secs(1) {
            return None;
        }
        let held_back = std::mem::take(&mut self.suppressed);
        self.window_start = Instant::now();
        self.in_window = 0;
        (held_back > 0).then_some(held_back)
    }
}
