//! Input listing: expands one input URL (a file, a directory, or a glob) into the objects to split,
//! sorted by path. As in Hadoop, names starting with `_` or `.` below the input are skipped, so a
//! previous job's `_SUCCESS` or an editor's `.swp` is never read as data.

use crate::{Location, StorageError, StorageUrl};
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use object_store::path::Path;
use std::path::PathBuf;

/// One object to read, with its size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputObject {
    pub url: StorageUrl,
    pub size: u64,
}

fn has_glob(text: &str) -> bool {
    text.contains(['*', '?', '['])
}

/// Expands `url` into the objects it names. A missing path and a glob that matches nothing are
/// errors; an existing directory with no visible files is an empty input.
pub async fn list_inputs(url: &StorageUrl) -> Result<Vec<InputObject>, StorageError> {
    let StorageUrl::Local(path) = url;
    if has_glob(&path.to_string_lossy()) {
        return list_glob(url, path).await;
    }
    let meta = std::fs::metadata(path).map_err(|_| StorageError::NotFound {
        url: url.to_string(),
    })?;
    let location = url.locate()?;
    if meta.is_file() {
        let head = location
            .store
            .head(&location.path)
            .await
            .map_err(StorageError::store(url.to_string()))?;
        return Ok(vec![InputObject {
            url: url.clone(),
            size: head.size,
        }]);
    }
    list_below(&location, |_| true).await
}

async fn list_glob(
    url: &StorageUrl,
    path: &std::path::Path,
) -> Result<Vec<InputObject>, StorageError> {
    let no_match = || StorageError::NoMatch {
        url: url.to_string(),
    };
    let base: PathBuf = path
        .components()
        .take_while(|c| !has_glob(&c.as_os_str().to_string_lossy()))
        .collect();
    let pattern =
        glob::Pattern::new(&path.to_string_lossy()).map_err(|e| StorageError::InvalidUrl {
            url: url.to_string(),
            reason: e.to_string(),
        })?;
    if !base.is_dir() {
        return Err(no_match());
    }
    let location = StorageUrl::Local(base).locate()?;
    let options = glob::MatchOptions {
        require_literal_separator: true,
        ..Default::default()
    };
    let objects = list_below(&location, |p| {
        pattern.matches_with(&format!("/{p}"), options)
    })
    .await?;
    if objects.is_empty() {
        return Err(no_match());
    }
    Ok(objects)
}

/// Every visible object below `location` whose path passes `keep`, sorted by path.
async fn list_below(
    location: &Location,
    keep: impl Fn(&Path) -> bool,
) -> Result<Vec<InputObject>, StorageError> {
    let listed: Vec<_> = location
        .store
        .list(Some(&location.path))
        .try_collect()
        .await
        .map_err(StorageError::store(location.url.to_string()))?;
    let base_depth = location.path.parts().count();
    let mut objects: Vec<InputObject> = listed
        .into_iter()
        .filter(|meta| !hidden_below(&meta.location, base_depth) && keep(&meta.location))
        .map(|meta| InputObject {
            url: location.url_of(&meta.location),
            size: meta.size,
        })
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
