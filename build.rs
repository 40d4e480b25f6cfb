//! Records the source revision vigie is built from, for the provenance of
//! its findings (docs/custody.md): `VIGIE_SOURCE_REVISION` when set (a
//! packager's build), else the repository's `HEAD`, else `unknown`.

use std::path::Path;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !text.is_empty()).then_some(text)
}

fn main() {
    println!("cargo:rerun-if-env-changed=VIGIE_SOURCE_REVISION");
    let revision = std::env::var("VIGIE_SOURCE_REVISION")
        .ok()
        .filter(|r| !r.is_empty())
        .or_else(|| git(&["rev-parse", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=VIGIE_SOURCE_REVISION={revision}");
    // Build again when HEAD moves (only files that exist: a missing one
    // would make every build run this script again).
    // HEAD lives in the git dir; refs in the common dir (they differ in a
    // linked worktree).
    let dirs = (git(&["rev-parse", "--git-dir"]), git(&["rev-parse", "--git-common-dir"]));
    if let (Some(dir), Some(common)) = dirs {
        let mut watch = vec![format!("{dir}/HEAD"), format!("{common}/packed-refs")];
        if let Some(r) = git(&["symbolic-ref", "-q", "HEAD"]) {
            watch.push(format!("{common}/{r}"));
        }
        for w in watch.into_iter().filter(|w| Path::new(w).exists()) {
            println!("cargo:rerun-if-changed={w}");
        }
    }
}
