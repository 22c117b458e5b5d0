//! Stamps the binary with the commit it was built from and the build date, for
//! `pincer --version`. No network; without git (a source tarball, a container build
//! without `.git`) the commit is "unknown". `SOURCE_DATE_EPOCH` sets the date for
//! reproducible builds.

use std::process::Command;

include!("core/src/clock/civil.rs");

fn main() {
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_string());
    let secs = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .ok()
                .map(|d| d.as_secs())
        });
    let date = secs.map_or_else(
        || "unknown".to_string(),
        |s| rfc3339_secs(s)[..10].to_string(),
    );
    println!("cargo:rustc-env=PINCER_COMMIT={commit}");
    println!("cargo:rustc-env=PINCER_BUILD_DATE={date}");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    // Stamped again when the commit changes or the sources do (a directory is watched
    // through its newest file).
    println!("cargo:rerun-if-changed=src");
    for path in git_paths() {
        println!("cargo:rerun-if-changed={path}");
    }
}

/// HEAD, the branch it points at and packed-refs, in this checkout (a worktree's HEAD is
/// in its own git dir, its branches in the common one).
fn git_paths() -> Vec<String> {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .map(|s| s.trim().to_string())
    };
    let (Some(dir), Some(common)) = (
        git(&["rev-parse", "--absolute-git-dir"]),
        git(&["rev-parse", "--path-format=absolute", "--git-common-dir"]),
    ) else {
        return Vec::new();
    };
    let mut paths = vec![format!("{dir}/HEAD"), format!("{common}/packed-refs")];
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        paths.push(format!("{common}/{branch}"));
    }
    paths
        .into_iter()
        .filter(|p| std::path::Path::new(p).exists())
        .collect()
}
