//! Upstream brokers for the bridge tests, from Debian's packages, each on free ports with its
//! data in a temp dir: Mosquitto, and RabbitMQ with its MQTT plugin (a clustered broker in
//! production).

use super::*;
use std::process::Child;

/// Mosquitto on a fixed free port with persistence in `dir`, keeping every queued message.
pub struct Upstream {
    child: Child,
    pub port: u16,
}

impl Upstream {
    pub fn start(dir: &Path, port: u16) -> Upstream {
        Upstream::start_with(dir, port, "")
    }

    /// The same with more configuration lines (for its listener).
    pub fn start_with(dir: &Path, port: u16, extra: &str) -> Upstream {
        let conf = dir.join("upstream.conf");
        let config = format!(
            "listener {port} 127.0.0.1\n{extra}allow_anonymous true\npersistence true\n\
             persistence_location {}/\nmax_queued_messages 0\n",
            dir.display()
        );
        std::fs::write(&conf, config).unwrap();
        give_to_mosquitto(dir);
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto is installed by .ci/run");
        wait_listening("the upstream to listen", port);
        Upstream { child, port }
    }

    /// SIGTERM: Mosquitto saves its sessions and queued messages, then exits.
    pub fn stop(mut self) {
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let _ = self.child.wait();
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        ([127, 0, 0, 1], self.port).into()
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A RabbitMQ node with the MQTT plugin on free ports, its data in `dir`; it keeps its queues
/// (and so a persistent subscriber's messages) across a stop and start.
pub struct Rabbit {
    child: Option<Child>,
    dir: PathBuf,
    pub port: u16,
    node: String,
    env: Vec<(&'static str, String)>,
}

impl Rabbit {
    pub fn start(dir: &Path) -> Rabbit {
        let (port, amqp, dist, epmd) = (free_port(), free_port(), free_port(), free_port());
        let d = dir.display();
        let config = format!(
            "listeners.tcp.default = {amqp}\nmqtt.listeners.tcp.default = {port}\n\
             mqtt.allow_anonymous = true\nloopback_users = none\n"
        );
        std::fs::write(dir.join("rabbitmq.conf"), config).unwrap();
        std::fs::write(dir.join("enabled_plugins"), "[rabbitmq_mqtt].\n").unwrap();
        let node = format!("edgemq{port}@localhost");
        let env = vec![
            ("RABBITMQ_MNESIA_BASE", format!("{d}/mnesia")),
            ("RABBITMQ_LOG_BASE", format!("{d}/log")),
            ("RABBITMQ_CONFIG_FILE", format!("{d}/rabbitmq.conf")),
            (
                "RABBITMQ_ENABLED_PLUGINS_FILE",
                format!("{d}/enabled_plugins"),
            ),
            ("RABBITMQ_FEATURE_FLAGS_FILE", format!("{d}/feature_flags")),
            ("RABBITMQ_NODENAME", node.clone()),
            ("RABBITMQ_DIST_PORT", dist.to_string()),
            // Its own port mapper, so tests running at once do not share one.
            ("ERL_EPMD_PORT", epmd.to_string()),
            ("HOME", d.to_string()),
        ];
        let mut rabbit = Rabbit {
            child: None,
            dir: dir.to_path_buf(),
            port,
            node,
            env,
        };
        rabbit.run();
        rabbit
    }

    fn root() -> bool {
        unsafe { libc::geteuid() == 0 }
    }

    /// Starts the node and waits for its MQTT listener (it takes about 12 s).
    pub fn run(&mut self) {
        // As root, Debian's script runs it as the `rabbitmq` user, which must own its files.
        let command = if Rabbit::root() {
            let owned = Command::new("chown")
                .arg("-R")
                .arg("rabbitmq:")
                .arg(&self.dir)
                .status();
            assert!(owned.is_ok_and(|s| s.success()), "chown to rabbitmq");
            "rabbitmq-server"
        } else {
            "/usr/lib/rabbitmq/bin/rabbitmq-server"
        };
        let child = Command::new(command)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("rabbitmq-server is installed by .ci/run");
        self.child = Some(child);
        wait_for("RabbitMQ's MQTT listener", Duration::from_secs(90), || {
            std::net::TcpStream::connect(("127.0.0.1", self.port))
                .map(drop)
                .map_err(|e| e.to_string())
        });
    }

    /// Stops the node (`rabbitmqctl stop`) and waits for it to exit.
    pub fn stop(&mut self) {
        assert!(self.halt(), "rabbitmqctl stop");
        wait_for(
            "RabbitMQ to close its listener",
            Duration::from_secs(30),
            || match std::net::TcpStream::connect(("127.0.0.1", self.port)) {
                Ok(_) => Err("still listening".to_string()),
                Err(_) => Ok(()),
            },
        );
    }

    /// `rabbitmqctl stop`, then waits for the node to exit; whether it stopped.
    fn halt(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        let ctl = if Rabbit::root() {
            "rabbitmqctl"
        } else {
            "/usr/lib/rabbitmq/bin/rabbitmqctl"
        };
        let stopped = Command::new(ctl)
            .args(["-n", &self.node, "stop"])
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let stopped = stopped.is_ok_and(|s| s.success());
        if !stopped {
            let _ = child.kill();
        }
        let _ = child.wait();
        stopped
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        ([127, 0, 0, 1], self.port).into()
    }
}

impl Drop for Rabbit {
    fn drop(&mut self) {
        self.halt();
        // The port mapper the node started.
        let _ = Command::new("epmd")
            .arg("-kill")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
