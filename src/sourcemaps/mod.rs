//! Source maps: the upload API `sentry-cli` speaks (chunk upload + artifact bundle assembly),
//! the artifact store, and symbolication of JavaScript frames at ingest.
//!
//! Upload: sentry-cli asks `chunk-upload/` for its options, offers a bundle to `assemble/` by
//! checksum, uploads the chunks it is told are missing (SHA-1 named, gzip possible) and asks
//! `assemble/` again until it says `ok`. Assembly joins the chunks, checks the checksum, reads
//! the zip (capped) and stores each file once per content checksum, zstd-compressed, indexed by
//! debug id and by release + URL.
//!
//! Symbolication: [`SourceMaps::symbolicate`] runs on the event before grouping. A frame is
//! matched to a map by debug id (`debug_meta.images` of type `sourcemap`, keyed by the frame's
//! `abs_path`) or, without one, by the event's release and the frame's URL. Mapped frames
//! replace the minified ones (which are kept as the exception's `raw_stacktrace`, as Sentry
//! does); frames with no map get an event error `js_no_source` that the event page shows.
//! Parsed maps are cached, bounded by their size.

pub mod api;
pub mod bundle;
pub mod store;
mod symbolicate;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redb::ReadableTable;
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{ByteSize, Config, HumanDuration};
use crate::metrics::{self, Kind};
use crate::store::{Db, StoreError, now_ms};
use bundle::FileKind;

pub use symbolicate::Loaded;

/// `[sourcemaps]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SourceMapsConfig {
    /// Largest chunk sentry-cli may upload (uncompressed); it is told this size.
    pub chunk_size: ByteSize,
    /// Largest bundle (the assembled zip, and the files in it added up).
    pub max_bundle_size: ByteSize,
    /// Largest single file in a bundle (a source map or a minified script).
    pub max_file_size: ByteSize,
    /// Most files in one bundle.
    pub max_files: usize,
    /// Bundles older than this are deleted (their files with the last bundle that holds
    /// them); "0s" keeps them until they are deleted by hand.
    pub retention: HumanDuration,
    /// Uploaded chunks that no assembly used are dropped after this.
    pub chunk_ttl: HumanDuration,
    /// Memory for parsed source maps kept between events (by their file size).
    pub cache_size: ByteSize,
}

impl Default for SourceMapsConfig {
    fn default() -> Self {
        Self {
            chunk_size: ByteSize::mb(8),
            max_bundle_size: ByteSize::mb(200),
            max_file_size: ByteSize::mb(50),
            max_files: 10_000,
            retention: HumanDuration::secs(90 * 24 * 3600),
            chunk_ttl: HumanDuration::secs(3600),
            cache_size: ByteSize::mb(64),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SourceMapsError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

crate::impl_from_redb!(SourceMapsError);

impl From<SourceMapsError> for crate::http::error::ApiError {
    fn from(e: SourceMapsError) -> Self {
        use crate::http::error::{ApiError, Code};
        let msg = e.to_string();
        match e {
            SourceMapsError::Invalid(_) => ApiError::new(Code::BadRequest, msg),
            SourceMapsError::TooLarge(_) => ApiError::new(Code::PayloadTooLarge, msg),
            SourceMapsError::NotFound(_) => ApiError::new(Code::NotFound, msg),
            SourceMapsError::Store(s) => ApiError::from(s),
        }
    }
}

/// A stored bundle, as listed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Bundle {
    pub id: u64,
    pub project_id: u64,
    pub checksum: String,
    pub created_ms: i64,
    pub release: Option<String>,
    pub dist: Option<String>,
    /// Bytes of the files (uncompressed).
    pub size: u64,
    pub files: Vec<BundleFile>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BundleFile {
    pub url: String,
    pub kind: FileKind,
    pub debug_id: Option<String>,
    pub sourcemap: Option<String>,
    pub sha1: String,
    pub size: u64,
}

/// The reply to an assemble request.
#[derive(Debug, Clone, Serialize)]
pub struct AssembleState {
    pub state: &'static str,
    #[serde(rename = "missingChunks")]
    pub missing_chunks: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[derive(Default)]
struct Metrics {
    frames_mapped: std::sync::atomic::AtomicU64,
    frames_unmapped: std::sync::atomic::AtomicU64,
    cache_hits: std::sync::atomic::AtomicU64,
    cache_misses: std::sync::atomic::AtomicU64,
}

struct Inner {
    db: Db,
    config: Arc<Config>,
    cache: Mutex<Cache>,
    metrics: Metrics,
}

/// The source maps service; cheap to clone.
#[derive(Clone)]
pub struct SourceMaps {
    inner: Arc<Inner>,
}

/// Parsed files by content checksum, least recently used out first once their sizes add up
/// past `[sourcemaps] cache_size`; and index lookups, dropped whenever artifacts change.
#[derive(Default)]
struct Cache {
    files: HashMap<String, (Arc<Loaded>, u64)>,
    order: VecDeque<(String, u64)>,
    bytes: u64,
    tick: u64,
    /// (project, key) → file sha1 (+ bundle id, type, Sourcemap header), or none.
    lookups: HashMap<(u64, String), Option<symbolicate::Found>>,
}

const LOOKUP_CACHE_MAX: usize = 50_000;

impl SourceMaps {
    pub fn new(db: Db, config: Arc<Config>) -> Self {
        SourceMaps {
            inner: Arc::new(Inner {
                db,
                config,
                cache: Mutex::new(Cache::default()),
                metrics: Metrics::default(),
            }),
        }
    }

    fn cfg(&self) -> &SourceMapsConfig {
        &self.inner.config.sourcemaps
    }

    /// Retention: deletes old bundles and unused chunks hourly.
    pub fn start(&self, shutdown: CancellationToken) -> Vec<JoinHandle<()>> {
        let this = self.clone();
        vec![tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(3600));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tick.tick() => {}
                }
                match this.prune(now_ms()).await {
                    Ok((b, c)) if b + c > 0 => {
                        tracing::info!("source maps retention: {b} bundles, {c} chunks deleted")
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!("source maps retention: {e}"),
                }
            }
        })]
    }

    pub fn render_metrics(&self, out: &mut String) {
        use std::sync::atomic::Ordering::Relaxed;
        let m = &self.inner.metrics;
        let cache = self.inner.cache.lock().unwrap_or_else(|p| p.into_inner());
        let frames = [
            ("mapped", &m.frames_mapped),
            ("unmapped", &m.frames_unmapped),
        ];
        let frames = frames.map(|(result, n)| (result, n.load(Relaxed)));
        let family = ("hearth_sourcemaps_frames_total", Kind::Counter, "");
        metrics::by_label(out, family, "result", frames);
        let lookups = [("hit", &m.cache_hits), ("miss", &m.cache_misses)];
        let lookups = lookups.map(|(result, n)| (result, n.load(Relaxed)));
        let family = ("hearth_sourcemaps_cache_total", Kind::Counter, "");
        metrics::by_label(out, family, "result", lookups);
        metrics::gauge(out, "hearth_sourcemaps_cache_bytes", "", cache.bytes);
    }

    /// The options sentry-cli reads from `GET chunk-upload/`.
    pub fn chunk_options(&self, url: String) -> serde_json::Value {
        let c = self.cfg();
        let chunk = c.chunk_size.bytes();
        serde_json::json!({
            "url": url,
            "chunkSize": chunk,
            "chunksPerRequest": 8,
            "maxRequestSize": chunk * 8 + 1024 * 1024,
            "maxFileSize": c.max_bundle_size.bytes(),
            "concurrency": 2,
            "hashAlgorithm": "sha1",
            "compression": ["gzip"],
            "accept": ["artifact_bundles", "release_files", "sources"],
        })
    }

    /// The largest request body the chunk upload route takes.
    pub fn max_request(&self) -> usize {
        (self.cfg().chunk_size.bytes() * 8 + 2 * 1024 * 1024) as usize
    }

    /// Stores uploaded chunks (already decompressed) after checking each one's SHA-1 and size.
    pub async fn put_chunks(
        &self,
        chunks: Vec<(String, Vec<u8>)>,
    ) -> Result<usize, SourceMapsError> {
        let cap = self.cfg().chunk_size.bytes();
        let mut ready = Vec::with_capacity(chunks.len());
        for (name, data) in chunks {
            if data.len() as u64 > cap {
                return Err(SourceMapsError::TooLarge(format!(
                    "a chunk is {} bytes; the limit is {cap} ([sourcemaps] chunk_size)",
                    data.len()
                )));
            }
            let sum = sha1_hex(&data);
            if !name.eq_ignore_ascii_case(&sum) {
                return Err(SourceMapsError::Invalid(format!(
                    "a chunk named {name} has SHA-1 {sum}; name each chunk by the SHA-1 of its content"
                )));
            }
            let z = zstd::bulk::compress(&data, 1).map_err(StoreError::Io)?;
            ready.push((sum, z));
        }
        let n = ready.len();
        let now = now_ms();
        self.inner
            .db
            .write(move |txn| {
                let mut t = txn.open_table(store::CHUNKS)?;
                for (sum, z) in &ready {
                    t.insert(sum.as_str(), (now, z.as_slice()))?;
                }
                Ok::<_, SourceMapsError>(())
            })
            .await?;
        Ok(n)
    }

    /// Assembles a bundle from its chunks into `projects`, or says which chunks are missing.
    /// Assembling a bundle the project has already is `ok` at once (dedup by checksum).
    pub async fn assemble(
        &self,
        projects: Vec<u64>,
        checksum: String,
        chunks: Vec<String>,
        version: Option<String>,
        dist: Option<String>,
    ) -> Result<AssembleState, SourceMapsError> {
        let checksum = checksum.to_ascii_lowercase();
        if checksum.len() != 40 || !checksum.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(SourceMapsError::Invalid(
                "checksum must be the SHA-1 of the bundle as 40 hex digits".into(),
            ));
        }
        let chunks: Vec<String> = chunks.iter().map(|c| c.to_ascii_lowercase()).collect();
        let cfg = self.cfg().clone();
        let max_chunks = (cfg.max_bundle_size.bytes() / cfg.chunk_size.bytes().max(1) + 1) as usize;
        if chunks.len() > max_chunks {
            return Err(SourceMapsError::TooLarge(format!(
                "the bundle has {} chunks; at most {max_chunks} ({} bytes, [sourcemaps] max_bundle_size) are accepted",
                chunks.len(),
                cfg.max_bundle_size.bytes()
            )));
        }
        // Known already in every project: nothing to upload.
        let (known, missing) = {
            let chunks = chunks.clone();
            let projects = projects.clone();
            let checksum = checksum.clone();
            self.inner
                .db
                .read(move |txn| {
                    let sums = txn.open_table(store::BUNDLE_SUMS)?;
                    let mut known = true;
                    for p in &projects {
                        if sums.get((*p, checksum.as_str()))?.is_none() {
                            known = false;
                        }
                    }
                    let mut missing = Vec::new();
                    if !known {
                        let t = txn.open_table(store::CHUNKS)?;
                        for c in &chunks {
                            if t.get(c.as_str())?.is_none() && !missing.contains(c) {
                                missing.push(c.clone());
                            }
                        }
                    }
                    Ok::<_, SourceMapsError>((known, missing))
                })
                .await?
        };
        if known {
            return Ok(AssembleState {
                state: "ok",
                missing_chunks: vec![],
                detail: None,
            });
        }
        if !missing.is_empty() {
            return Ok(AssembleState {
                state: "not_found",
                missing_chunks: missing,
                detail: None,
            });
        }
        // Join, check, parse and store on the blocking pool.
        let this = self.clone();
        let result = crate::store::run_blocking(move || {
            this.assemble_blocking(&projects, &checksum, &chunks, version, dist, &cfg)
        })
        .await;
        match result {
            Ok(()) => Ok(AssembleState {
                state: "ok",
                missing_chunks: vec![],
                detail: None,
            }),
            Err(SourceMapsError::Invalid(m)) | Err(SourceMapsError::TooLarge(m)) => {
                Ok(AssembleState {
                    state: "error",
                    missing_chunks: vec![],
                    detail: Some(m),
                })
            }
            Err(e) => Err(e),
        }
    }

    fn assemble_blocking(
        &self,
        projects: &[u64],
        checksum: &str,
        chunks: &[String],
        version: Option<String>,
        dist: Option<String>,
        cfg: &SourceMapsConfig,
    ) -> Result<(), SourceMapsError> {
        let max = cfg.max_bundle_size.bytes();
        let zip = self.inner.db.read_blocking(|txn| {
            let t = txn.open_table(store::CHUNKS)?;
            let mut zip = Vec::new();
            for c in chunks {
                let Some(v) = t.get(c.as_str())? else {
                    return Err(SourceMapsError::Invalid(format!(
                        "chunk {c} is no longer stored; upload again"
                    )));
                };
                let (_, z) = v.value();
                let part = zstd::bulk::decompress(z, cfg.chunk_size.as_usize())
                    .map_err(|e| StoreError::Codec(e.to_string()))?;
                if (zip.len() + part.len()) as u64 > max {
                    return Err(SourceMapsError::TooLarge(format!(
                        "the bundle is larger than {max} bytes ([sourcemaps] max_bundle_size)"
                    )));
                }
                zip.extend_from_slice(&part);
            }
            Ok(zip)
        })?;
        let sum = sha1_hex(&zip);
        if sum != checksum {
            return Err(SourceMapsError::Invalid(format!(
                "the chunks join to a bundle with SHA-1 {sum}, not the checksum {checksum}"
            )));
        }
        let parsed = bundle::parse(
            &zip,
            bundle::Caps {
                max_files: cfg.max_files,
                max_file_size: cfg.max_file_size.bytes(),
                max_total: max,
            },
        )
        .map_err(SourceMapsError::Invalid)?;
        drop(zip);
        // A map that does not parse is refused at upload, not found broken at ingest.
        for f in &parsed.files {
            if f.kind == FileKind::SourceMap
                && let Err(e) = sourcemap::decode_slice(&f.content)
            {
                return Err(SourceMapsError::Invalid(format!(
                    "{} is not a valid source map: {e}",
                    f.path
                )));
            }
        }
        let release = version.filter(|v| !v.is_empty()).or(parsed.release.clone());
        let dist = dist.filter(|v| !v.is_empty()).or(parsed.dist.clone());
        let files: Vec<(BundleFile, &[u8])> = parsed
            .files
            .iter()
            .map(|f| {
                (
                    BundleFile {
                        url: f.url.clone(),
                        kind: f.kind,
                        debug_id: f.debug_id.clone(),
                        sourcemap: f.sourcemap.clone(),
                        sha1: sha1_hex(&f.content),
                        size: f.content.len() as u64,
                    },
                    f.content.as_slice(),
                )
            })
            .collect();
        let size = files.iter().map(|(f, _)| f.size).sum();
        let now = now_ms();
        self.inner.db.write_blocking(|txn| {
            for &project_id in projects {
                if txn
                    .open_table(store::BUNDLE_SUMS)?
                    .get((project_id, checksum))?
                    .is_some()
                {
                    continue;
                }
                let id = store::next_id(txn, "bundle")?;
                let b = Bundle {
                    id,
                    project_id,
                    checksum: checksum.to_string(),
                    created_ms: now,
                    release: release.clone(),
                    dist: dist.clone(),
                    size,
                    files: files.iter().map(|(f, _)| f.clone()).collect(),
                };
                for (f, content) in &files {
                    store::put_blob(txn, &f.sha1, content)?;
                    let pointer = format!(
                        "{id}:{}:{}:{}",
                        f.sha1,
                        f.kind.as_str(),
                        f.sourcemap.as_deref().unwrap_or("")
                    );
                    if let Some(d) = &f.debug_id {
                        txn.open_table(store::DEBUG_IDS)?
                            .insert((project_id, d.as_str(), f.kind.as_str()), pointer.as_str())?;
                    }
                    if let Some(r) = &release {
                        txn.open_table(store::RELEASE_FILES)?
                            .insert((project_id, r.as_str(), f.url.as_str()), pointer.as_str())?;
                    }
                }
                txn.open_table(store::BUNDLES)?
                    .insert((project_id, id), store::encode(&b).as_slice())?;
                txn.open_table(store::BUNDLE_SUMS)?
                    .insert((project_id, checksum), id)?;
            }
            let mut t = txn.open_table(store::CHUNKS)?;
            for c in chunks {
                t.remove(c.as_str())?;
            }
            Ok::<_, SourceMapsError>(())
        })?;
        self.changed();
        Ok(())
    }

    /// A project's bundles, newest first.
    pub async fn list(&self, project_id: u64) -> Result<Vec<Bundle>, SourceMapsError> {
        self.inner
            .db
            .read(move |txn| {
                let t = txn.open_table(store::BUNDLES)?;
                let mut out = Vec::new();
                for row in t.range((project_id, 0)..=(project_id, u64::MAX))? {
                    let (_, v) = row?;
                    out.push(store::decode::<Bundle>(v.value())?);
                }
                out.reverse();
                Ok::<_, SourceMapsError>(out)
            })
            .await
    }

    /// Deletes a bundle, its index entries, and files no other bundle holds.
    pub async fn delete(&self, project_id: u64, id: u64) -> Result<(), SourceMapsError> {
        let found = self
            .inner
            .db
            .write(move |txn| delete_bundle(txn, project_id, id))
            .await?;
        self.changed();
        if found {
            Ok(())
        } else {
            Err(SourceMapsError::NotFound(format!(
                "bundle {id} not found in project {project_id}; list them with GET /api/projects/{project_id}/sourcemaps"
            )))
        }
    }

    /// Deletes bundles older than the retention and chunks older than `chunk_ttl`; returns
    /// how many of each.
    pub async fn prune(&self, now: i64) -> Result<(usize, usize), SourceMapsError> {
        let cfg = self.cfg().clone();
        let out = self
            .inner
            .db
            .write(move |txn| {
                let mut bundles = 0;
                if !cfg.retention.get().is_zero() {
                    let cutoff = now - cfg.retention.get().as_millis() as i64;
                    let old: Vec<(u64, u64)> = {
                        let t = txn.open_table(store::BUNDLES)?;
                        let mut old = Vec::new();
                        for row in t.iter()? {
                            let (k, v) = row?;
                            let b: Bundle = store::decode(v.value())?;
                            if b.created_ms < cutoff {
                                old.push(k.value());
                            }
                        }
                        old
                    };
                    for (p, id) in old {
                        delete_bundle(txn, p, id)?;
                        bundles += 1;
                    }
                }
                let cutoff = now - cfg.chunk_ttl.get().as_millis() as i64;
                let stale: Vec<String> = {
                    let t = txn.open_table(store::CHUNKS)?;
                    let mut stale = Vec::new();
                    for row in t.iter()? {
                        let (k, v) = row?;
                        if v.value().0 < cutoff {
                            stale.push(k.value().to_string());
                        }
                    }
                    stale
                };
                let mut t = txn.open_table(store::CHUNKS)?;
                for c in &stale {
                    t.remove(c.as_str())?;
                }
                Ok::<_, SourceMapsError>((bundles, stale.len()))
            })
            .await?;
        if out.0 > 0 {
            self.changed();
        }
        Ok(out)
    }

    /// Artifacts changed: index lookups cached so far may be stale.
    fn changed(&self) {
        let mut c = self.inner.cache.lock().unwrap_or_else(|p| p.into_inner());
        c.lookups.clear();
    }

    /// Maps the JavaScript frames of event `raw` through the project's source maps. `None` when
    /// the event has nothing to map (the caller keeps `raw` as it is).
    pub fn symbolicate(&self, project_id: u64, raw: &[u8]) -> Option<Vec<u8>> {
        symbolicate::run(self, project_id, raw)
    }

    /// A pointer found in an index, through the lookup cache.
    fn lookup(
        &self,
        project_id: u64,
        key: String,
        find: impl FnOnce(&redb::ReadTransaction) -> Result<Option<String>, StoreError>,
    ) -> Option<symbolicate::Found> {
        {
            let c = self.inner.cache.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(f) = c.lookups.get(&(project_id, key.clone())) {
                return f.clone();
            }
        }
        let found = match self.inner.db.read_blocking(find) {
            Ok(v) => v.and_then(|p| symbolicate::Found::parse(&p)),
            Err(e) => {
                tracing::warn!("source map lookup: {e}");
                return None;
            }
        };
        let mut c = self.inner.cache.lock().unwrap_or_else(|p| p.into_inner());
        if c.lookups.len() >= LOOKUP_CACHE_MAX {
            c.lookups.clear();
        }
        c.lookups.insert((project_id, key), found.clone());
        found
    }

    /// Whether the project has any bundle: a project that never uploaded one skips
    /// symbolication (and its cost) entirely.
    fn has_bundles(&self, project_id: u64) -> bool {
        self.lookup(project_id, "any".into(), move |txn| {
            let t = txn.open_table(store::BUNDLES)?;
            let mut r = t.range((project_id, 0)..=(project_id, u64::MAX))?;
            Ok(r.next().transpose()?.map(|_| "0:-:other:".to_string()))
        })
        .is_some()
    }

    fn by_debug_id(
        &self,
        project_id: u64,
        debug_id: &str,
        kind: FileKind,
    ) -> Option<symbolicate::Found> {
        let key = format!("d:{debug_id}:{}", kind.as_str());
        let d = debug_id.to_string();
        self.lookup(project_id, key, move |txn| {
            let t = txn.open_table(store::DEBUG_IDS)?;
            let v = t.get((project_id, d.as_str(), kind.as_str()))?;
            Ok(v.map(|v| v.value().to_string()))
        })
    }

    fn by_url(&self, project_id: u64, release: &str, url: &str) -> Option<symbolicate::Found> {
        let key = format!("r:{release}\u{0}{url}");
        let (r, u) = (release.to_string(), url.to_string());
        self.lookup(project_id, key, move |txn| {
            let t = txn.open_table(store::RELEASE_FILES)?;
            let v = t.get((project_id, r.as_str(), u.as_str()))?;
            Ok(v.map(|v| v.value().to_string()))
        })
    }

    /// A stored file, parsed, through the bounded cache.
    fn load(&self, sha1: &str, kind: FileKind) -> Result<Arc<Loaded>, String> {
        use std::sync::atomic::Ordering::Relaxed;
        {
            let mut c = self.inner.cache.lock().unwrap_or_else(|p| p.into_inner());
            c.tick += 1;
            let tick = c.tick;
            if let Some((l, t)) = c.files.get_mut(sha1) {
                *t = tick;
                let l = l.clone();
                c.order.push_back((sha1.to_string(), tick));
                self.inner.metrics.cache_hits.fetch_add(1, Relaxed);
                trim_order(&mut c);
                return Ok(l);
            }
        }
        self.inner.metrics.cache_misses.fetch_add(1, Relaxed);
        let cap = self.cfg().max_file_size.as_usize();
        let bytes = self
            .inner
            .db
            .read_blocking(|txn| {
                let t = txn.open_table(store::BLOBS)?;
                store::read_blob(&t, sha1, cap)
            })
            .map_err(|e| e.to_string())?
            .ok_or_else(|| "the file was deleted".to_string())?;
        let size = bytes.len() as u64;
        let loaded = Arc::new(Loaded::parse(bytes, kind)?);
        let budget = self.cfg().cache_size.bytes();
        if size <= budget {
            let mut c = self.inner.cache.lock().unwrap_or_else(|p| p.into_inner());
            c.tick += 1;
            let tick = c.tick;
            if c.files
                .insert(sha1.to_string(), (loaded.clone(), tick))
                .is_none()
            {
                c.bytes += size;
            }
            c.order.push_back((sha1.to_string(), tick));
            while c.bytes > budget {
                let Some((k, t)) = c.order.pop_front() else {
                    break;
                };
                if c.files.get(&k).is_some_and(|(_, last)| *last == t)
                    && let Some((l, _)) = c.files.remove(&k)
                {
                    c.bytes -= l.size();
                }
            }
        }
        Ok(loaded)
    }
}

/// Drops stale entries from the recency queue so it stays near the number of cached files.
fn trim_order(c: &mut Cache) {
    if c.order.len() > c.files.len() * 4 + 64 {
        let files = &c.files;
        c.order
            .retain(|(k, t)| files.get(k).is_some_and(|(_, last)| last == t));
    }
}

fn delete_bundle(
    txn: &redb::WriteTransaction,
    project_id: u64,
    id: u64,
) -> Result<bool, SourceMapsError> {
    let Some(b) = txn
        .open_table(store::BUNDLES)?
        .remove((project_id, id))?
        .map(|v| store::decode::<Bundle>(v.value()))
        .transpose()?
    else {
        return Ok(false);
    };
    txn.open_table(store::BUNDLE_SUMS)?
        .remove((project_id, b.checksum.as_str()))?;
    let prefix = format!("{id}:");
    for f in &b.files {
        store::release_blob(txn, &f.sha1)?;
        if let Some(d) = &f.debug_id {
            let mut t = txn.open_table(store::DEBUG_IDS)?;
            let key = (project_id, d.as_str(), f.kind.as_str());
            let ours = t.get(key)?.is_some_and(|v| v.value().starts_with(&prefix));
            if ours {
                t.remove(key)?;
            }
        }
        if let Some(r) = &b.release {
            let mut t = txn.open_table(store::RELEASE_FILES)?;
            let key = (project_id, r.as_str(), f.url.as_str());
            let ours = t.get(key)?.is_some_and(|v| v.value().starts_with(&prefix));
            if ours {
                t.remove(key)?;
            }
        }
    }
    Ok(true)
}

pub fn sha1_hex(data: &[u8]) -> String {
    use sha1::Digest;
    hex::encode(sha1::Sha1::digest(data))
}

#[cfg(test)]
mod retention_tests;
