//! Starts that must be refused: the binary run as `pincer gateway ...` and expected to
//! exit on its own, quickly.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long a refused start may take before the test calls it served.
const LIMIT: Duration = Duration::from_secs(10);

/// The virtual memory a refused start may use (`ulimit -v`, KiB): a config read without
/// a cap (`--config /dev/zero`) fails the test instead of filling the machine's memory.
const MEMORY_KIB: u64 = 1 << 20;

/// Runs `pincer gateway ARGS` in `home` with `env` (and no inherited `PINCER_*` config
/// variables) and waits up to 10 s for it to end: `(exit code, stderr)`; -1 when a signal
/// ended it. A gateway still running then is killed and the test fails: what should have
/// been refused was served.
pub fn refused(home: &Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let log = home.join(format!("start-{}.log", uuid::Uuid::new_v4().simple()));
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -v {MEMORY_KIB} && exec \"$0\" gateway \"$@\""
        ))
        .arg(super::bin())
        .args(args)
        .env("PINCER_HOME", home)
        .env_remove("PINCER_CONFIG")
        .env_remove("PINCER_GATEWAY_TOKEN")
        .env_remove("PINCER_GATEWAY_PORT")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("spawn pincer");
    let deadline = Instant::now() + LIMIT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let err = std::fs::read_to_string(&log).unwrap_or_default();
            return (status.code().unwrap_or(-1), err);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "`pincer gateway {}` with {env:?} was still running after {LIMIT:?}; log:\n{}",
                args.join(" "),
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
