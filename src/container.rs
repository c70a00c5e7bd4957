//! Container safety check: inside a container, the data directory must be a mounted volume.
//!
//! A container's own filesystem is thrown away with the container, so a server that wrote its
//! database there would lose everything on the next `docker rm` or image upgrade, silently. The
//! image sets `HEARTH_IN_CONTAINER=1`; then `hearth serve` looks in `/proc/self/mountinfo` for the
//! mount that holds the data directory and refuses to start when that is the container's root
//! (or a tmpfs), unless the operator opts in with `HEARTH_ALLOW_EPHEMERAL_DATA=1`.

use std::path::{Component, Path, PathBuf};

/// Set by the container image: enables the check.
pub const IN_CONTAINER_ENV: &str = "HEARTH_IN_CONTAINER";
/// Set by an operator who really wants throwaway data (demos, tests): skips the check.
pub const ALLOW_EPHEMERAL_ENV: &str = "HEARTH_ALLOW_EPHEMERAL_DATA";

#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error(
        "the data directory {dir} is not a mounted volume ({why}), so everything Hearth stores \
         would be lost when the container is removed. Mount a volume there, e.g. \
         `docker run -v hearth-data:{dir} ...` (or `-v /srv/hearth:{dir}`), or set \
         {ALLOW_EPHEMERAL_ENV}=1 to run with throwaway data"
    )]
    EphemeralDataDir { dir: String, why: &'static str },
    #[error(
        "cannot read /proc/self/mountinfo to check that the data directory is a volume: {0}; \
         set {ALLOW_EPHEMERAL_ENV}=1 to skip this check"
    )]
    Mountinfo(#[source] std::io::Error),
}

/// One line of `/proc/self/mountinfo`: where something is mounted and what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The mounted directory inside its source filesystem (field 4): for a Docker or Podman
    /// volume `.../volumes/<name>/_data`.
    pub root: PathBuf,
    pub mount_point: PathBuf,
    pub fs_type: String,
}

/// Parses `/proc/self/mountinfo` (proc(5)): field 5 is the mount point with space, tab, newline
/// and backslash written as octal escapes; the filesystem type follows the ` - ` separator.
/// Lines that do not have that shape are skipped.
pub fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let mut fields = left.split(' ');
            let root = fields.nth(3)?;
            let mount_point = fields.next()?;
            let fs_type = right.split(' ').next()?;
            Some(Mount {
                root: PathBuf::from(unescape_octal(root)),
                mount_point: PathBuf::from(unescape_octal(mount_point)),
                fs_type: fs_type.to_string(),
            })
        })
        .collect()
}

fn unescape_octal(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let v = (bytes[i + 1] - b'0') as u32 * 64
                + (bytes[i + 2] - b'0') as u32 * 8
                + (bytes[i + 3] - b'0') as u32;
            out.push(v as u8);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The mount that holds `path` (absolute, normalized): the one with the longest mount point
/// that is `path` or one of its ancestors. With the same mount point listed twice (a mount on
/// top of another), the later line is the one visible.
pub fn covering_mount<'a>(mounts: &'a [Mount], path: &Path) -> Option<&'a Mount> {
    let mut best: Option<&Mount> = None;
    for m in mounts {
        if path.starts_with(&m.mount_point)
            && best.is_none_or(|b| {
                m.mount_point.components().count() >= b.mount_point.components().count()
            })
        {
            best = Some(m);
        }
    }
    best
}

/// Why the data directory at `path` would not survive the container, or `None` if it would.
pub fn ephemeral_reason(mounts: &[Mount], path: &Path) -> Option<&'static str> {
    match covering_mount(mounts, path) {
        None => Some("no mount holds it"),
        Some(m) if m.mount_point == Path::new("/") => {
            Some("it is on the container's root filesystem")
        }
        Some(m) if m.fs_type == "tmpfs" || m.fs_type == "ramfs" => {
            Some("it is on a tmpfs in memory")
        }
        Some(m) if is_anonymous_volume(&m.root) => Some(
            "it is an anonymous volume, made from the image's VOLUME because no -v was given; \
             a new container would not get it back",
        ),
        Some(_) => None,
    }
}

/// Docker and Podman name an anonymous volume with 64 hex digits and keep its files in
/// `<storage>/volumes/<name>/_data`; a named volume has the name the operator chose.
fn is_anonymous_volume(root: &Path) -> bool {
    let parts: Vec<_> = root.components().rev().take(3).collect();
    match parts.as_slice() {
        [
            Component::Normal(data),
            Component::Normal(name),
            Component::Normal(volumes),
        ] => {
            *data == "_data"
                && *volumes == "volumes"
                && name.len() == 64
                && name
                    .to_str()
                    .is_some_and(|n| n.bytes().all(|b| b.is_ascii_hexdigit()))
        }
        _ => false,
    }
}

/// Makes `dir` absolute and resolves symlinks in the part of it that exists, so that it can be
/// compared with mount points (the directory itself may not have been created yet).
pub fn resolve_dir(dir: &Path, cwd: &Path) -> PathBuf {
    let joined = if dir.is_absolute() {
        dir.to_path_buf()
    } else {
        cwd.join(dir)
    };
    let mut lexical = PathBuf::new();
    for c in joined.components() {
        match c {
            Component::ParentDir => {
                lexical.pop();
            }
            Component::CurDir => {}
            other => lexical.push(other),
        }
    }
    // Canonicalize the longest existing prefix; keep the missing tail as written.
    let mut existing = lexical.clone();
    let mut tail = Vec::new();
    loop {
        if let Ok(canon) = existing.canonicalize() {
            let mut out = canon;
            for part in tail.iter().rev() {
                out.push(part);
            }
            return out;
        }
        match (
            existing.file_name().map(|n| n.to_os_string()),
            existing.parent(),
        ) {
            (Some(name), Some(parent)) => {
                tail.push(name);
                existing = parent.to_path_buf();
            }
            _ => return lexical,
        }
    }
}

/// The check `hearth serve` runs before opening the database. `env` looks up environment
/// variables (a parameter so tests need not change the process environment).
pub fn check_data_dir(
    data_dir: &Path,
    env: impl Fn(&str) -> Option<String>,
) -> Result<(), ContainerError> {
    let set = |name: &str| env(name).is_some_and(|v| !v.is_empty() && v != "0");
    if !set(IN_CONTAINER_ENV) {
        return Ok(());
    }
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    let dir = resolve_dir(data_dir, &cwd);
    if set(ALLOW_EPHEMERAL_ENV) {
        tracing::warn!(
            data_dir = %dir.display(),
            "{ALLOW_EPHEMERAL_ENV} is set: not checking that the data directory is a volume; \
             data may be lost when the container is removed"
        );
        return Ok(());
    }
    let text =
        std::fs::read_to_string("/proc/self/mountinfo").map_err(ContainerError::Mountinfo)?;
    match ephemeral_reason(&parse_mountinfo(&text), &dir) {
        None => Ok(()),
        Some(why) => Err(ContainerError::EphemeralDataDir {
            dir: dir.display().to_string(),
            why,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Trimmed from a real `docker run -v hearth-data:/var/lib/hearth` container.
    const DOCKER_WITH_VOLUME: &str = "\
619 540 0:52 / / rw,relatime master:305 - overlay overlay rw,lowerdir=/var/lib/docker/overlay2/l/A:/var/lib/docker/overlay2/l/B,upperdir=/var/lib/docker/overlay2/x/diff,workdir=/var/lib/docker/overlay2/x/work
620 619 0:55 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw
621 619 0:56 / /dev rw,nosuid - tmpfs tmpfs rw,size=65536k,mode=755
627 619 8:1 /var/lib/docker/volumes/hearth-data/_data /var/lib/hearth rw,relatime master:1 - ext4 /dev/sda1 rw,errors=remount-ro
628 619 8:1 /var/lib/docker/containers/c/resolv.conf /etc/resolv.conf rw,relatime - ext4 /dev/sda1 rw
629 619 8:1 /var/lib/docker/containers/c/hostname /etc/hostname rw,relatime - ext4 /dev/sda1 rw
630 621 0:57 / /dev/shm rw,nosuid,nodev,noexec,relatime - tmpfs shm rw,size=65536k
";

    fn mounts(text: &str) -> Vec<Mount> {
        parse_mountinfo(text)
    }

    #[test]
    fn parses_mount_points_and_types() {
        let m = mounts(DOCKER_WITH_VOLUME);
        assert_eq!(m.len(), 7);
        assert_eq!(m[0].mount_point, Path::new("/"));
        assert_eq!(m[0].fs_type, "overlay");
        assert_eq!(m[3].mount_point, Path::new("/var/lib/hearth"));
        assert_eq!(
            m[3].root,
            Path::new("/var/lib/docker/volumes/hearth-data/_data")
        );
        assert_eq!(m[3].fs_type, "ext4");
        assert_eq!(m[6].fs_type, "tmpfs");
    }

    #[test]
    fn optional_fields_do_not_shift_the_type() {
        // Several optional fields (shared:, master:) before the separator.
        let m = mounts("1 0 0:1 / /data rw shared:1 master:2 propagate_from:3 - xfs /dev/vdb rw\n");
        assert_eq!(m[0].mount_point, Path::new("/data"));
        assert_eq!(m[0].fs_type, "xfs");
    }

    #[test]
    fn unescapes_octal_in_mount_points() {
        let m = mounts("1 0 8:1 / /srv/my\\040data\\134x rw - ext4 /dev/sda1 rw\n");
        assert_eq!(m[0].mount_point, Path::new("/srv/my data\\x"));
        assert_eq!(unescape_octal("a\\011b\\012"), "a\tb\n");
        // A backslash not followed by three octal digits stays as it is.
        assert_eq!(unescape_octal("a\\9b\\0"), "a\\9b\\0");
    }

    #[test]
    fn skips_malformed_lines() {
        assert!(mounts("garbage\n\n1 2 3\n").is_empty());
    }

    #[test]
    fn volume_at_the_data_dir_is_accepted() {
        let m = mounts(DOCKER_WITH_VOLUME);
        assert_eq!(ephemeral_reason(&m, Path::new("/var/lib/hearth")), None);
        // A subdirectory of the volume is on the volume too.
        assert_eq!(
            ephemeral_reason(&m, Path::new("/var/lib/hearth/data")),
            None
        );
    }

    #[test]
    fn volume_above_the_data_dir_is_accepted() {
        let m = mounts(
            "1 0 0:52 / / rw - overlay overlay rw\n2 1 8:1 /vol /var/lib rw - ext4 /dev/sda1 rw\n",
        );
        assert_eq!(ephemeral_reason(&m, Path::new("/var/lib/hearth")), None);
    }

    #[test]
    fn container_root_is_refused() {
        let m = mounts(DOCKER_WITH_VOLUME);
        assert!(ephemeral_reason(&m, Path::new("/data")).is_some());
        // A sibling whose name starts like the volume is not on it.
        assert!(ephemeral_reason(&m, Path::new("/var/lib/hearth2")).is_some());
        // A mount below the data directory does not hold the database.
        let below = mounts(
            "1 0 0:52 / / rw - overlay overlay rw\n2 1 8:1 /v /var/lib/hearth/search rw - ext4 /dev/sda1 rw\n",
        );
        assert!(ephemeral_reason(&below, Path::new("/var/lib/hearth")).is_some());
    }

    #[test]
    fn anonymous_volumes_are_refused_and_named_ones_accepted() {
        let anon = format!(
            "1 0 0:52 / / rw - overlay overlay rw\n2 1 8:1 /var/lib/containers/storage/volumes/{}/_data /var/lib/hearth rw - ext4 /dev/sda1 rw\n",
            "0123456789abcdef".repeat(4)
        );
        let why = ephemeral_reason(&mounts(&anon), Path::new("/var/lib/hearth")).unwrap();
        assert!(why.contains("anonymous volume"), "{why}");
        // The same shape with a chosen name is a named volume.
        let named = anon.replace(&"0123456789abcdef".repeat(4), "hearth-data");
        assert_eq!(
            ephemeral_reason(&mounts(&named), Path::new("/var/lib/hearth")),
            None
        );
        // A host directory bind-mounted from some .../_data path is not mistaken for one.
        let bind = "1 0 0:52 / / rw - overlay overlay rw\n2 1 8:1 /srv/hearth /var/lib/hearth rw - ext4 /dev/sda1 rw\n";
        assert_eq!(
            ephemeral_reason(&mounts(bind), Path::new("/var/lib/hearth")),
            None
        );
    }

    #[test]
    fn tmpfs_is_refused() {
        let m = mounts(DOCKER_WITH_VOLUME);
        assert_eq!(
            ephemeral_reason(&m, Path::new("/dev/shm/hearth")),
            Some("it is on a tmpfs in memory")
        );
    }

    #[test]
    fn the_later_of_stacked_mounts_wins() {
        let m = mounts(
            "1 0 0:52 / / rw - overlay overlay rw\n2 1 8:1 /v /data rw - ext4 /dev/sda1 rw\n3 2 0:9 / /data rw - tmpfs tmpfs rw\n",
        );
        assert!(ephemeral_reason(&m, Path::new("/data")).is_some());
    }

    #[test]
    fn relative_dirs_are_resolved_against_cwd() {
        let cwd = Path::new("/nonexistent-hearth-test/work");
        assert_eq!(
            resolve_dir(Path::new("./hearth-data"), cwd),
            Path::new("/nonexistent-hearth-test/work/hearth-data")
        );
        assert_eq!(
            resolve_dir(Path::new("../x/./y"), cwd),
            Path::new("/nonexistent-hearth-test/x/y")
        );
    }

    #[test]
    fn outside_a_container_nothing_is_checked() {
        assert!(check_data_dir(Path::new("/nonexistent"), |_| None).is_ok());
        let env = |k: &str| (k == IN_CONTAINER_ENV).then(|| "0".to_string());
        assert!(check_data_dir(Path::new("/nonexistent"), env).is_ok());
    }

    #[test]
    fn override_skips_the_check() {
        let env = |_: &str| Some("1".to_string());
        assert!(check_data_dir(Path::new("/"), env).is_ok());
    }

    #[test]
    fn in_a_container_the_root_filesystem_is_refused_with_the_fix() {
        // The test process's own root is "/" in its mountinfo, whatever machine runs it.
        let env = |k: &str| (k == IN_CONTAINER_ENV).then(|| "1".to_string());
        let err = check_data_dir(Path::new("/"), env).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("-v hearth-data:/"), "{msg}");
        assert!(msg.contains(ALLOW_EPHEMERAL_ENV), "{msg}");
    }
}
