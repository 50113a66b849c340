//! Input listing: expands one input URL (a file, a directory or key prefix, or a glob) into the
//! objects to split, sorted by URL. As in Hadoop, names starting with `_` or `.` below the input
//! are skipped, so a previous job's `_SUCCESS` or an editor's `.swp` is never read as data.
//! Object store listings are paginated by `object_store`, so a prefix of any size is listed whole.

use crate::{Location, StorageError, StorageUrl};
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use object_store::path::Path;

/// One object to read, with its size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputObject {
    pub url: StorageUrl,
    pub size: u64,
}

/// Expands `url` into the objects it names. A missing path, an empty prefix and a glob that
/// matches nothing are errors; an existing local directory with no visible files is an empty
/// input.
pub async fn list_inputs(url: &StorageUrl) -> Result<Vec<InputObject>, StorageError> {
    if let Some(base) = url.glob_base() {
        return list_glob(url, &base).await;
    }
    let location = url.locate()?;
    match url {
        StorageUrl::Local(path) => {
            let meta = std::fs::metadata(path).map_err(|_| StorageError::NotFound {
                url: url.to_string(),
            })?;
            if meta.is_file() {
                return single(&location).await;
            }
            list_below(&location, |_| true).await
        }
        StorageUrl::S3 { key, .. } => {
            if !key.is_empty() && !key.ends_with('/') {
                match single(&location).await {
                    Err(StorageError::ObjectNotFound { .. }) => {}
                    found => return found,
                }
            }
            let objects = list_below(&location, |_| true).await?;
            if objects.is_empty() {
                return Err(StorageError::NotFound {
                    url: url.to_string(),
                });
            }
            Ok(objects)
        }
    }
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
    }])
}

async fn list_glob(url: &StorageUrl, base: &StorageUrl) -> Result<Vec<InputObject>, StorageError> {
    let pattern = glob::Pattern::new(&url.to_string()).map_err(|e| StorageError::InvalidUrl {
        url: url.to_string(),
        reason: e.to_string(),
    })?;
    let options = glob::MatchOptions {
        require_literal_separator: true,
        ..Default::default()
    };
    let location = base.locate()?;
    let objects = list_below(&location, |candidate| {
        pattern.matches_with(&candidate.to_string(), options)
    })
    .await?;
    if objects.is_empty() {
        return Err(StorageError::NoMatch {
            url: url.to_string(),
        });
    }
    Ok(objects)
}

/// Every visible object below `location` whose URL passes `keep`, sorted by URL.
async fn list_below(
    location: &Location,
    keep: impl Fn(&StorageUrl) -> bool,
) -> Result<Vec<InputObject>, StorageError> {
    let listed: Vec<_> = match location
        .store
        .list(Some(&location.path))
        .try_collect()
        .await
    {
        Ok(listed) => listed,
        // A local directory that does not exist lists as nothing, like an empty prefix.
        Err(object_store::Error::NotFound { .. })
            if matches!(location.url, StorageUrl::Local(_)) =>
        {
            Vec::new()
        }
        Err(e) => return Err(location.error(&location.url)(e)),
    };
    let base_depth = location.path.parts().count();
    // On an object store a zero-byte object is a "directory marker" (or holds nothing to read).
    let markers = matches!(location.url, StorageUrl::S3 { .. });
    let mut objects: Vec<InputObject> = listed
        .into_iter()
        .filter(|meta| !hidden_below(&meta.location, base_depth))
        .filter(|meta| !(markers && meta.size == 0))
        .map(|meta| InputObject {
            url: location.url_of(&meta.location),
            size: meta.size,
        })
        .filter(|object| keep(&object.url))
        .collect();
    objects.sort_by_key(|o| o.url.to_string());
    Ok(objects)
}

/// Whether any part of `path` below the first `base_depth` parts starts with `_` or `.`.
fn hidden_below(path: &Path, base_depth: usize) -> bool {
    path.parts()
        .skip(base_depth)
        .any(|part| part.as_ref().starts_with(['_', '.']))
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
        let url = StorageUrl::Local(dir.path().to_path_buf());
        let objects = list_inputs(&url).await.unwrap();
        assert_eq!(names(&objects, dir.path()), ["a.txt", "b.txt", "sub/c.txt"]);
        assert_eq!(
            objects.iter().map(|o| o.size).collect::<Vec<_>>(),
            [1, 2, 3]
        );
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
    }

    #[tokio::test]
    async fn an_empty_directory_is_an_empty_input() {
        let dir = tempfile::tempdir().unwrap();
        let url = StorageUrl::Local(dir.path().to_path_buf());
        assert!(list_inputs(&url).await.unwrap().is_empty());
    }
}
