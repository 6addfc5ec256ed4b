//! Parsing `--data` into a URL and an object store delta-rs can use.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use object_store::memory::InMemory;
use object_store::ObjectStore;
use url::Url;

use crate::{Result, StorageError};

/// Where a Northstar data set lives.
#[derive(Debug, Clone)]
pub struct DataLocation {
    /// The location as the user wrote it, for messages.
    display: String,
    /// The root URL, always ending in `/`.
    root: Url,
}

impl DataLocation {
    /// Parses a local path, `file://`, `s3://bucket/prefix` or `memory://name`.
    pub fn parse(text: &str) -> Result<Self> {
        let invalid = |why: String| StorageError::InvalidLocation(text.to_string(), why);
        let mut root = if text.contains("://") {
            let url = Url::parse(text).map_err(|e| invalid(e.to_string()))?;
            match url.scheme() {
                "file" | "s3" | "s3a" | "memory" => url,
                other => {
                    return Err(invalid(format!(
                        "unsupported scheme '{other}' (use a local path, s3://bucket/prefix or memory://name)"
                    )))
                }
            }
        } else {
            let path = Path::new(text);
            std::fs::create_dir_all(path).map_err(|e| invalid(format!("cannot create directory: {e}")))?;
            let absolute = std::fs::canonicalize(path).map_err(|e| invalid(e.to_string()))?;
            Url::from_directory_path(&absolute).map_err(|_| invalid("not an absolute path".to_string()))?
        };
        if root.scheme().starts_with("s3") && root.host_str().unwrap_or("").is_empty() {
            return Err(invalid("an s3 location needs a bucket: s3://bucket/prefix".into()));
        }
        if !root.path().ends_with('/') {
            let path = format!("{}/", root.path());
            root.set_path(&path);
        }
        Ok(Self { display: text.to_string(), root })
    }

    /// The URL of a table under this location.
    pub fn table_url(&self, table: &str) -> Url {
        self.root.join(&format!("{table}/")).expect("a table name is a valid path segment")
    }

    pub fn is_memory(&self) -> bool {
        self.root.scheme() == "memory"
    }

    /// The shared in-process store of a `memory://` location. delta-rs would otherwise create a
    /// fresh empty store per table handle, so each import would vanish before the next query.
    pub(crate) fn memory_store(&self) -> Option<(Arc<dyn ObjectStore>, Url)> {
        if !self.is_memory() {
            return None;
        }
        static STORES: OnceLock<Mutex<HashMap<String, Arc<dyn ObjectStore>>>> = OnceLock::new();
        let mut stores = STORES.get_or_init(Default::default).lock().expect("store map");
        let key = self.root.host_str().unwrap_or("").to_string();
        let store = stores.entry(key).or_insert_with(|| Arc::new(InMemory::new())).clone();
        let base = Url::parse(&format!("memory://{}/", self.root.host_str().unwrap_or(""))).expect("memory url");
        Some((store, base))
    }
}

impl std::fmt::Display for DataLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.display)
    }
}

/// Storage options for delta-rs: S3 settings come from the environment (AWS_ENDPOINT_URL,
/// AWS_REGION, AWS_ACCESS_KEY_ID, …). A plain-http endpoint (a local S3-compatible server) is
/// allowed only when the endpoint itself says http://.
pub(crate) fn storage_options(location: &DataLocation) -> HashMap<String, String> {
    let mut options = HashMap::new();
    if location.root.scheme().starts_with("s3") {
        if let Ok(endpoint) = std::env::var("AWS_ENDPOINT_URL") {
            if endpoint.starts_with("http://") {
                options.insert("AWS_ALLOW_HTTP".into(), "true".into());
            }
        }
    }
    options
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_kind_of_location() {
        let s3 = DataLocation::parse("s3://bucket/some/prefix").unwrap();
        assert_eq!(s3.table_url("events").as_str(), "s3://bucket/some/prefix/events/");
        let mem = DataLocation::parse("memory://t1").unwrap();
        assert!(mem.is_memory());
        assert_eq!(mem.table_url("events").as_str(), "memory://t1/events/");
        let dir = tempfile_dir();
        let local = DataLocation::parse(dir.to_str().unwrap()).unwrap();
        assert!(local.table_url("events").as_str().starts_with("file:///"));
    }

    #[test]
    fn rejects_unknown_schemes_and_bucketless_s3() {
        let err = DataLocation::parse("ftp://x/y").unwrap_err().to_string();
        assert!(err.contains("unsupported scheme 'ftp'"), "{err}");
        let err = DataLocation::parse("s3:///prefix").unwrap_err().to_string();
        assert!(err.contains("needs a bucket"), "{err}");
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("northstar-loc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
