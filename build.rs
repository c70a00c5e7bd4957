//! Records the git commit for `hearth --version`.
fn main() {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let commit = std::env::var("HEARTH_GIT_COMMIT")
        .ok()
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]));
    println!(
        "cargo:rustc-env=HEARTH_GIT_COMMIT={}",
        commit.unwrap_or_else(|| "unknown".into())
    );
    println!("cargo:rerun-if-env-changed=HEARTH_GIT_COMMIT");
    // Watch the files that move when HEAD does. They are asked from git rather than assumed at
    // .git/: in a worktree .git is a file, and a watched path that does not exist makes cargo
    // rerun this script, and so rebuild the crate, on every build.
    let git_dir = git(&["rev-parse", "--absolute-git-dir"]);
    let common_dir = git(&["rev-parse", "--path-format=absolute", "--git-common-dir"]);
    // The branch HEAD points at (none when detached: then HEAD itself changes).
    let branch = git(&["symbolic-ref", "-q", "HEAD"]);
    let watched = [
        git_dir.as_ref().map(|d| format!("{d}/HEAD")),
        common_dir
            .as_ref()
            .zip(branch.as_ref())
            .map(|(d, b)| format!("{d}/{b}")),
        common_dir.as_ref().map(|d| format!("{d}/packed-refs")),
    ];
    let mut any = false;
    for path in watched.into_iter().flatten() {
        if std::path::Path::new(&path).exists() {
            println!("cargo:rerun-if-changed={path}");
            any = true;
        }
    }
    if !any {
        // Not a git checkout (e.g. a source tarball): only the env variable matters.
        println!("cargo:rerun-if-changed=build.rs");
    }
}
