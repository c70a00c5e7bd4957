//! Artifact bundles as sentry-cli builds them: a zip with `manifest.json`
//! (`{"files": {"<path>": {"type", "url", "headers": {"debug-id", "Sourcemap"}}}, "release"?}`)
//! and the files it lists. Read with caps before anything is allocated.

use std::collections::BTreeMap;
use std::io::Read;

use serde::{Deserialize, Serialize};

/// What a bundle holds that symbolication reads.
#[derive(Debug, Clone)]
pub struct Parsed {
    pub release: Option<String>,
    pub dist: Option<String>,
    pub files: Vec<ParsedFile>,
}

#[derive(Debug, Clone)]
pub struct ParsedFile {
    pub path: String,
    pub kind: FileKind,
    /// `~/path/app.js`: the URL the file is served at, with the origin as `~`.
    pub url: String,
    pub debug_id: Option<String>,
    /// The `Sourcemap` header of a minified file: its map's URL, relative to it.
    pub sourcemap: Option<String>,
    pub content: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileKind {
    MinifiedSource,
    SourceMap,
    Source,
    IndexedRamBundle,
    Other,
}

impl FileKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FileKind::MinifiedSource => "minified_source",
            FileKind::SourceMap => "source_map",
            FileKind::Source => "source",
            FileKind::IndexedRamBundle => "indexed_ram_bundle",
            FileKind::Other => "other",
        }
    }

    fn parse(s: &str) -> FileKind {
        match s {
            "minified_source" => FileKind::MinifiedSource,
            "source_map" => FileKind::SourceMap,
            "source" => FileKind::Source,
            "indexed_ram_bundle" => FileKind::IndexedRamBundle,
            _ => FileKind::Other,
        }
    }
}

#[derive(Deserialize)]
struct Manifest {
    #[serde(default)]
    files: BTreeMap<String, ManifestFile>,
    #[serde(default)]
    release: Option<String>,
    #[serde(default)]
    dist: Option<String>,
}

#[derive(Deserialize)]
struct ManifestFile {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

/// Caps on one bundle.
#[derive(Debug, Clone, Copy)]
pub struct Caps {
    pub max_files: usize,
    pub max_file_size: u64,
    pub max_total: u64,
}

/// Reads a bundle zip. Errors are messages for the uploader.
pub fn parse(zip_bytes: &[u8], caps: Caps) -> Result<Parsed, String> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(zip_bytes))
        .map_err(|e| format!("the bundle is not a zip archive: {e}"))?;
    if zip.len() > caps.max_files + 1 {
        return Err(format!(
            "the bundle has {} files; at most {} are accepted",
            zip.len(),
            caps.max_files
        ));
    }
    let manifest: Manifest = {
        let entry = zip
            .by_name("manifest.json")
            .map_err(|_| "the bundle has no manifest.json; build it with sentry-cli".to_string())?;
        let bytes = read_capped(entry, caps.max_file_size, "manifest.json")?;
        serde_json::from_slice(&bytes)
            .map_err(|e| format!("the bundle's manifest.json is not valid: {e}"))?
    };
    let mut total = 0u64;
    let mut files = Vec::new();
    for (path, meta) in manifest.files {
        let kind = FileKind::parse(meta.kind.as_deref().unwrap_or(""));
        let entry = zip
            .by_name(&path)
            .map_err(|_| format!("manifest.json lists {path}, which the bundle does not hold"))?;
        total = total.saturating_add(entry.size());
        if total > caps.max_total {
            return Err(format!(
                "the bundle's files add up to more than {} bytes ([sourcemaps] max_bundle_size)",
                caps.max_total
            ));
        }
        let content = read_capped(entry, caps.max_file_size, &path)?;
        let header = |name: &str| {
            meta.headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let debug_id = header("debug-id").and_then(|d| normalize_debug_id(&d));
        let sourcemap = header("sourcemap").or_else(|| header("x-sourcemap"));
        files.push(ParsedFile {
            url: meta.url.unwrap_or_else(|| format!("~/{path}")),
            path,
            kind,
            debug_id,
            sourcemap,
            content,
        });
    }
    Ok(Parsed {
        release: manifest.release.filter(|r| !r.is_empty()),
        dist: manifest.dist.filter(|d| !d.is_empty()),
        files,
    })
}

fn read_capped(
    entry: zip::read::ZipFile<'_, impl Read>,
    cap: u64,
    name: &str,
) -> Result<Vec<u8>, String> {
    if entry.size() > cap {
        return Err(format!(
            "{name} is {} bytes; files up to {cap} bytes are accepted ([sourcemaps] max_file_size)",
            entry.size()
        ));
    }
    let mut out = Vec::with_capacity(entry.size() as usize);
    // The declared size can lie: the read itself is capped too.
    entry
        .take(cap + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("{name} cannot be read from the bundle: {e}"))?;
    if out.len() as u64 > cap {
        return Err(format!(
            "{name} is larger than {cap} bytes ([sourcemaps] max_file_size)"
        ));
    }
    Ok(out)
}

/// A debug id as lowercase hyphenated UUID (`85314830-023f-4cf1-a267-535f4e37bb17`), or
/// `None` when it is not one.
pub fn normalize_debug_id(s: &str) -> Option<String> {
    let hex: String = s
        .chars()
        .filter(|c| *c != '-')
        .take(33)
        .collect::<String>()
        .to_ascii_lowercase();
    if hex.len() < 32 || !hex[..32].chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let h = &hex[..32];
    Some(format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    pub(crate) fn zip_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for (name, data) in files {
            w.start_file(*name, zip::write::SimpleFileOptions::default())
                .unwrap();
            w.write_all(data).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    const CAPS: Caps = Caps {
        max_files: 10,
        max_file_size: 1000,
        max_total: 2000,
    };

    #[test]
    fn reads_manifest_and_files() {
        let manifest = br#"{"files":{"files/_/_/app.js":{"type":"minified_source","url":"~/app.js","headers":{"debug-id":"85314830-023F-4CF1-A267-535F4E37BB17","Sourcemap":"app.js.map"}}},"release":"1.0"}"#;
        let z = zip_of(&[("manifest.json", manifest), ("files/_/_/app.js", b"x()")]);
        let p = parse(&z, CAPS).unwrap();
        assert_eq!(p.release.as_deref(), Some("1.0"));
        assert_eq!(p.files.len(), 1);
        let f = &p.files[0];
        assert_eq!(f.kind, FileKind::MinifiedSource);
        assert_eq!(f.url, "~/app.js");
        assert_eq!(
            f.debug_id.as_deref(),
            Some("85314830-023f-4cf1-a267-535f4e37bb17")
        );
        assert_eq!(f.sourcemap.as_deref(), Some("app.js.map"));
        assert_eq!(f.content, b"x()");
    }

    #[test]
    fn refuses_what_is_not_a_bundle_or_too_large() {
        assert!(parse(b"not a zip", CAPS).unwrap_err().contains("not a zip"));
        let z = zip_of(&[("a.js", b"1")]);
        assert!(parse(&z, CAPS).unwrap_err().contains("manifest.json"));
        let manifest = br#"{"files":{"big.js":{"type":"source_map"}}}"#;
        let z = zip_of(&[("manifest.json", manifest), ("big.js", &[b'a'; 1500])]);
        assert!(parse(&z, CAPS).unwrap_err().contains("max_file_size"));
        let manifest = br#"{"files":{"gone.js":{"type":"source_map"}}}"#;
        let z = zip_of(&[("manifest.json", manifest)]);
        assert!(parse(&z, CAPS).unwrap_err().contains("gone.js"));
    }

    #[test]
    fn debug_ids_are_normalized() {
        assert_eq!(
            normalize_debug_id("85314830023f4cf1a267535f4e37bb17").as_deref(),
            Some("85314830-023f-4cf1-a267-535f4e37bb17")
        );
        assert_eq!(normalize_debug_id("nope"), None);
    }
}
