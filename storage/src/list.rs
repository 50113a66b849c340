//! Input listing: expands one input URL (a file, a directory or key prefix, or a glob) into the
//! objects to split, sorted by URL, each with what listing saw of it (size and [`Version`]) so a
//! reader can tell it changed since. As in Hadoop, names starting with `_` or `.` below the input
//! are skipped, so a previous job's `_SUCCESS` or an editor's `.swp` is never read as data; every
//! other file is read, whatever its name. A path that exists is that file or directory, even when
//! its name holds glob characters (`x[1].txt`); only a path that does not exist is a glob.
//!
//! Local directories are walked here (with `walkdir`), not listed through object_store: its
//! `LocalFileSystem` hides names ending in `#` and digits (`chapter#1`) as its own temporary files,
//! and a user's file must never be skipped for its name. Object store listings are paginated by
//! `object_store`, so a prefix of any size is listed whole.

use crate::read::local_version;
use crate::{Location, StorageError, StorageUrl};
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStoreExt};

/// One object to read, as listing saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputObject {
    pub url: StorageUrl,
    pub size: u64,
    pub version: Version,
}

/// What listing saw of an object besides its size. Every read checks it again, so an object
/// rewritten or replaced after listing fails its task rather than being read half old, half new.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Version {
    /// The object's ETag (S3), or a local file's device, inode and modification time in one
    /// string (see [`local_version`]).
    Tag(String),
    /// Seconds since the Unix epoch of the last modification: all that a store without ETags in
    /// its listings gives (some S3-compatible servers).
    Modified(i64),
    /// Nothing beyond the size.
    Unknown,
}

impl Version {
    fn of(meta: &ObjectMeta) -> Version {
        match &meta.e_tag {
            Some(tag) => Version::Tag(tag.clone()),
            None => Version::Modified(meta.last_modified.timestamp()),
        }
    }
}

/// Expands `url` into the objects it names. A missing path, an empty prefix and a glob that
/// matches nothing are errors; an existing local directory with no visible files is an empty
/// input.
pub async fn list_inputs(url: &StorageUrl) -> Result<Vec<InputObject>, StorageError> {
    match url {
        StorageUrl::Local(path) => {
            let (url, root) = (url.clone(), path.clone());
            // A directory walk is blocking file system work.
            tokio::task::spawn_blocking(move || list_local(&url, &root))
                .await
                .map_err(|e| StorageError::LocalInput {
                    path: path.clone(),
                    source: std::io::Error::other(e.to_string()),
                })?
        }
        StorageUrl::S3 { .. } => list_s3(url).await,
    }
}

fn list_local(url: &StorageUrl, path: &std::path::Path) -> Result<Vec<InputObject>, StorageError> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => walk(path, |_| true),
        Ok(meta) if meta.is_file() => Ok(vec![local_object(path, &meta)?]),
        Ok(_) => Err(StorageError::InvalidUrl {
            url: url.to_string(),
            reason: "not a regular file or a directory".to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => match url.glob_base() {
            Some(base) => glob_local(url, &base),
            None => Err(StorageError::NotFound {
                url: url.to_string(),
            }),
        },
        Err(source) => Err(StorageError::LocalInput {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn glob_local(url: &StorageUrl, base: &StorageUrl) -> Result<Vec<InputObject>, StorageError> {
    let matches = glob_matcher(url)?;
    let StorageUrl::Local(base) = base else {
        unreachable!("the glob base of a local URL is local");
    };
    let objects = if base.is_dir() {
        walk(base, matches)?
    } else {
        Vec::new()
    };
    if objects.is_empty() {
        return Err(StorageError::NoMatch {
            url: url.to_string(),
        });
    }
    Ok(objects)
}

/// Every regular file below `root` (following links, as reading does) whose URL passes `keep`,
/// sorted by URL; hidden names below `root` are skipped, hidden directories not even entered.
fn walk(
    root: &std::path::Path,
    keep: impl Fn(&StorageUrl) -> bool,
) -> Result<Vec<InputObject>, StorageError> {
    let entries = walkdir::WalkDir::new(root)
        .follow_links(true)
        .min_depth(1)
        .into_iter()
        .filter_entry(|entry| !is_hidden(entry.file_name().as_encoded_bytes()));
    let mut objects = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| StorageError::LocalInput {
            path: e.path().unwrap_or(root).to_path_buf(),
            source: e.into(),
        })?;
        if !entry.file_type().is_file() {
            continue;
        }
        let url = local_url(entry.path())?;
        if !keep(&url) {
            continue;
        }
        let meta = entry.metadata().map_err(|e| StorageError::LocalInput {
            path: entry.path().to_path_buf(),
            source: e.into(),
        })?;
        objects.push(InputObject {
            url,
            size: meta.len(),
            version: Version::Tag(local_version(&meta)),
        });
    }
    sort(&mut objects);
    Ok(objects)
}

fn local_object(
    path: &std::path::Path,
    meta: &std::fs::Metadata,
) -> Result<InputObject, StorageError> {
    Ok(InputObject {
        url: local_url(path)?,
        size: meta.len(),
        version: Version::Tag(local_version(meta)),
    })
}

/// The URL of a local file. A task names its input as text, so a name that is not UTF-8 could
/// not be read back: it is refused, not skipped.
fn local_url(path: &std::path::Path) -> Result<StorageUrl, StorageError> {
    match path.to_str() {
        Some(_) => Ok(StorageUrl::Local(path.to_path_buf())),
        None => Err(StorageError::NonUtf8Name {
            path: path.to_string_lossy().into_owned(),
        }),
    }
}

async fn list_s3(url: &StorageUrl) -> Result<Vec<InputObject>, StorageError> {
    let StorageUrl::S3 { key, .. } = url else {
        unreachable!("list_s3 is given S3 URLs");
    };
    let glob = url.glob_base();
    let location = match (url.locate(), &glob) {
        (Ok(location), _) => Some(location),
        // A glob need not be a valid key.
        (Err(_), Some(_)) => None,
        (Err(e), None) => return Err(e),
    };
    // A key that exists is that object, glob characters or not.
    if let Some(location) = &location
        && !key.is_empty()
        && !key.ends_with('/')
    {
        match single(location).await {
            Err(StorageError::ObjectNotFound { .. }) => {}
            found => return found,
        }
    }
    if let Some(base) = glob {
        return glob_s3(url, &base).await;
    }
    let location = location.expect("a URL that is not a glob was located above");
    let objects = list_below(&location, |_| true).await?;
    if objects.is_empty() {
        return Err(StorageError::NotFound {
            url: url.to_string(),
        });
    }
    Ok(objects)
}

async fn single(location: &Location) -> Result<Vec<InputObject>, StorageError> {
    let head = location
        .store
        .head(&location.path)
        .await
        .map_err(location.error(&location.url))?;
    Ok(vec![InputObject {
        url: location.url.clone(),
        size: head.size,
        version: Version::of(&head),
    }])
}

pub(crate) fn glob_matcher(
    url: &StorageUrl,
) -> Result<impl Fn(&StorageUrl) -> bool + use<>, StorageError> {
    let pattern = glob::Pattern::new(&url.to_string()).map_err(|e| StorageError::InvalidUrl {
        url: url.to_string(),
        reason: e.to_string(),
    })?;
    let options = glob::MatchOptions {
        require_literal_separator: true,
        ..Default::default()
    };
    Ok(move |candidate: &StorageUrl| pattern.matches_with(&candidate.to_string(), options))
}

async fn glob_s3(url: &StorageUrl, base: &StorageUrl) -> Result<Vec<InputObject>, StorageError> {
    let matches = glob_matcher(url)?;
    let objects = list_below(&base.locate()?, matches).await?;
    if objects.is_empty() {
        return Err(StorageError::NoMatch {
            url: url.to_string(),
        });
    }
    Ok(objects)
}

/// Every visible object below an object store `location` whose URL passes `keep`, sorted by URL.
async fn list_below(
    location: &Location,
    keep: impl Fn(&StorageUrl) -> bool,
) -> Result<Vec<InputObject>, StorageError> {
    let listed: Vec<_> = location
        .store
        .list(Some(&location.path))
        .try_collect()
        .await
        .map_err(location.error(&location.url))?;
    let base_depth = location.path.parts().count();
    let mut objects: Vec<InputObject> = listed
        .into_iter()
        .filter(|meta| !hidden_below(&meta.location, base_depth))
        // A zero-byte object is a "directory marker" (or holds nothing to read).
        .filter(|meta| meta.size > 0)
        .map(|meta| InputObject {
            url: location.url_of(&meta.location),
            size: meta.size,
            version: Version::of(&meta),
        })
        .filter(|object| keep(&object.url))
        .collect();
    sort(&mut objects);
    Ok(objects)
}

fn sort(objects: &mut [InputObject]) {
    objects.sort_by_cached_key(|o| o.url.to_string());
}

/// Whether a name is hidden from input: it starts with `_` or `.`.
fn is_hidden(name: &[u8]) -> bool {
    name.starts_with(b"_") || name.starts_with(b".")
}

/// Whether any part of `path` below the first `base_depth` parts is hidden.
fn hidden_below(path: &Path, base_depth: usize) -> bool {
    path.parts()
        .skip(base_depth)
        .any(|part| is_hidden(part.as_ref().as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &std::path::Path, name: &str, text: &str) {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn names(objects: &[InputObject], dir: &std::path::Path) -> Vec<String> {
        let prefix = format!("file://{}/", dir.display());
        objects
            .iter()
            .map(|o| o.url.to_string().replace(&prefix, ""))
            .collect()
    }

    #[tokio::test]
    async fn directories_list_recursively_and_skip_hidden_names() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "b.txt", "bb");
        write(dir.path(), "a.txt", "a");
        write(dir.path(), "sub/c.txt", "ccc");
        write(dir.path(), "_SUCCESS", "");
        write(dir.path(), ".a.txt.swp", "x");
        write(dir.path(), "_temporary/x/part", "x");
        write(dir.path(), "sub/.git/config", "x");
        let url = StorageUrl::Local(dir.path().to_path_buf());
        let objects = list_inputs(&url).await.unwrap();
        assert_eq!(names(&objects, dir.path()), ["a.txt", "b.txt", "sub/c.txt"]);
        assert_eq!(
            objects.iter().map(|o| o.size).collect::<Vec<_>>(),
            [1, 2, 3]
        );
    }

    #[tokio::test]
    async fn every_visible_file_is_listed_whatever_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let odd = [
            "100%",
            "a b.txt",
            "chapter#1",
            "naïve ü.txt",
            "q?.txt",
            "star*",
            "sub #2/x#12",
            "x%20y",
            "x[1].txt",
        ];
        for name in odd {
            write(dir.path(), name, "x\n");
        }
        let url = StorageUrl::Local(dir.path().to_path_buf());
        let objects = list_inputs(&url).await.unwrap();
        assert_eq!(names(&objects, dir.path()), odd);
        // Each is a URL that parses back to its own path.
        for object in &objects {
            assert_eq!(
                StorageUrl::parse(&object.url.to_string()).unwrap(),
                object.url
            );
        }
    }

    #[tokio::test]
    async fn an_existing_path_is_itself_even_with_glob_characters() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "x[1].txt", "literal\n");
        write(dir.path(), "x1.txt", "a glob would match this\n");
        write(dir.path(), "d[2]/in", "in a directory\n");
        let file = StorageUrl::Local(dir.path().join("x[1].txt"));
        let objects = list_inputs(&file).await.unwrap();
        assert_eq!(names(&objects, dir.path()), ["x[1].txt"]);
        let directory = StorageUrl::Local(dir.path().join("d[2]"));
        let objects = list_inputs(&directory).await.unwrap();
        assert_eq!(names(&objects, dir.path()), ["d[2]/in"]);
        // A path that does not exist is a glob.
        let glob = StorageUrl::Local(dir.path().join("x[0-9].txt"));
        let objects = list_inputs(&glob).await.unwrap();
        assert_eq!(names(&objects, dir.path()), ["x1.txt"]);
    }

    #[tokio::test]
    async fn local_files_are_listed_with_a_version() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a", "one\n");
        let url = StorageUrl::Local(dir.path().join("a"));
        let before = list_inputs(&url).await.unwrap();
        assert!(matches!(before[0].version, Version::Tag(_)));
        // Replaced by a file of the same size: another version.
        write(dir.path(), "b", "two\n");
        std::fs::rename(dir.path().join("b"), dir.path().join("a")).unwrap();
        let after = list_inputs(&url).await.unwrap();
        assert_eq!(before[0].size, after[0].size);
        assert_ne!(before[0].version, after[0].version);
    }

    #[tokio::test]
    async fn globs_match_within_one_path_segment() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "2026/01/part-1", "x");
        write(dir.path(), "2026/02/part-2", "x");
        write(dir.path(), "2026/02/other", "x");
        write(dir.path(), "2026/part-3", "x");
        let url = StorageUrl::Local(dir.path().join("2026/*/part-*"));
        let objects = list_inputs(&url).await.unwrap();
        assert_eq!(
            names(&objects, dir.path()),
            ["2026/01/part-1", "2026/02/part-2"]
        );
    }

    #[tokio::test]
    async fn missing_paths_and_empty_globs_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = StorageUrl::Local(dir.path().join("nope"));
        let err = list_inputs(&missing).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("input path does not exist: {missing}")
        );
        let glob = StorageUrl::Local(dir.path().join("*.csv"));
        let err = list_inputs(&glob).await.unwrap_err();
        assert_eq!(err.to_string(), format!("input matches no files: {glob}"));
        let glob = StorageUrl::Local(dir.path().join("nope/*.csv"));
        let err = list_inputs(&glob).await.unwrap_err();
        assert_eq!(err.to_string(), format!("input matches no files: {glob}"));
    }

    #[tokio::test]
    async fn an_empty_directory_is_an_empty_input() {
        let dir = tempfile::tempdir().unwrap();
        let url = StorageUrl::Local(dir.path().to_path_buf());
        assert!(list_inputs(&url).await.unwrap().is_empty());
    }
}
