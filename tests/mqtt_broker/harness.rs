//! The test's processes: a mosquitto broker with a generated config ([`Broker`]) and
//! `c3n-edge run` on the bbb-bird clip ([`run_cmd`], [`spawn_run`]), with small helpers.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use c3n_edge::sink::mqtt::Protocol;

pub const BIN: &str = env!("CARGO_BIN_EXE_c3n-edge");
pub const CAMERA: &str = "bird";

pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Whether mosquitto can run here; prints SKIP (or panics under CI=true) when it cannot.
pub fn have_mosquitto(test: &str) -> bool {
    let ok = Command::new("mosquitto")
        .arg("-h")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
        && Command::new("mosquitto_passwd")
            .arg("-h")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
    crate::common::require(
        test,
        ok,
        "mosquitto / mosquitto_passwd is not installed (apt-get install mosquitto; \
         tests/setup.sh installs Debian's mosquitto)",
    )
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

pub fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + timeout;
    while !f() {
        assert!(
            Instant::now() < end,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A mosquitto process with its generated config; killed on drop.
pub struct Broker {
    pub conf: PathBuf,
    pub port: u16,
    pub child: Option<Child>,
    pub log: PathBuf,
}

impl Broker {
    pub fn start(dir: &Path, extra: &str) -> Broker {
        // mosquitto started as root drops to the user `mosquitto`, which must be able to write
        // its persistence file here (else the restart test loses the subscriber's session)
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777))
            .expect("chmod the broker's directory");
        let port = free_port();
        let conf = dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!("listener {port} 127.0.0.1\n{extra}\nlog_type all\n"),
        )
        .expect("write mosquitto.conf");
        let mut b = Broker {
            conf,
            port,
            child: None,
            log: dir.join("mosquitto.log"),
        };
        b.spawn();
        b
    }

    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("broker log");
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&self.conf)
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start mosquitto");
        self.child = Some(child);
        let port = self.port;
        wait_for("mosquitto to listen", Duration::from_secs(10), || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
    }

    /// SIGTERM (mosquitto saves its persistence file) and wait.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            signal(&c, "TERM");
            let end = Instant::now() + Duration::from_secs(10);
            while c.try_wait().ok().flatten().is_none() && Instant::now() < end {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn signal(c: &Child, sig: &str) {
    let ok = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(c.id().to_string())
        .status()
        .expect("run kill")
        .success();
    assert!(ok, "kill -{sig} {}", c.id());
}

/// `c3n-edge run` on the bbb-bird clip, events to `events`, plus `extra` arguments.
pub fn run_cmd(events: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.current_dir(root())
        .args([
            "run",
            "file://assets/clips/bbb-bird/frames/%05d.png",
            "--audio",
            "file://assets/clips/bbb-bird/audio.wav",
        ])
        .args(extra)
        .arg("--events")
        .arg(events);
    c
}

/// `c3n-edge run` on the bbb-bird clip (looped forever) publishing to `url` with protocol
/// `proto` (`--mqtt-protocol`; `None`: the config's `[mqtt] protocol` decides).
pub fn spawn_run(
    dir: &Path,
    url: &str,
    proto: Option<Protocol>,
    config: &str,
    events: &Path,
) -> Child {
    let cfg = dir.join("c3n.toml");
    std::fs::write(&cfg, config).expect("write config");
    let log = std::fs::File::create(dir.join("c3n-edge.log")).expect("log");
    let p = proto.map(|p| p.to_string());
    let mut args = vec![
        "--input-loop",
        "-1",
        "--camera-name",
        CAMERA,
        "--mqtt",
        url,
        "--log",
        "info",
    ];
    if let Some(p) = &p {
        args.extend(["--mqtt-protocol", p.as_str()]);
    }
    run_cmd(events, &args)
        .arg("--config")
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn c3n-edge")
}

pub fn lines(p: &Path) -> Vec<String> {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

pub const DISCOVERY: [&str; 10] = [
    "homeassistant/sensor/c3n-edge-bird/fps/config",
    "homeassistant/sensor/c3n-edge-bird/mask_rate/config",
    "homeassistant/sensor/c3n-edge-bird/inference_ms/config",
    "homeassistant/sensor/c3n-edge-bird/frames_bad/config",
    "homeassistant/sensor/c3n-edge-bird/audio_gaps/config",
    "homeassistant/sensor/c3n-edge-bird/frames_skipped/config",
    "homeassistant/binary_sensor/c3n-edge-bird/sound/config",
    "homeassistant/event/c3n-edge-bird/event/config",
    "homeassistant/image/c3n-edge-bird/snapshot/config",
    "homeassistant/switch/c3n-edge-bird/detect/config",
];
