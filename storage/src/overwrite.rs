//! What a job may replace, and where it may write. `--overwrite` removes a previous job's output
//! and nothing else: the output must hold only what Quern writes there, or it is refused, naming
//! the first entry that is not, before anything is deleted; then only those entries are deleted.
//! Job output is `_SUCCESS`, `part-r-NNNNN` and `part-m-NNNNN` files, `_temporary/attempt-N/`
//! holding part files, the coordinator's write probe (`_quern-probe-PID`), and the staging file
//! object_store's local store writes beside any of these (`NAME#N`), which a crash can leave. A
//! symbolic link is never job output: it is refused, never followed.
//!
//! And no job writes where it reads: [`check_output_apart`] refuses an output that is, or is
//! inside, one of the job's inputs, and, with `--overwrite`, an input inside the output.

use crate::commit::{SUCCESS, TEMPORARY};
use crate::list::glob_matcher;
use crate::{Location, StorageError, StorageUrl};
use futures::TryStreamExt;
use object_store::ObjectStore;
use object_store::path::Path;
use std::path::PathBuf;

/// What `--overwrite` deletes, found and checked before anything is.
pub(crate) enum PreviousOutput {
    /// Local files, then directories, deepest first.
    Local {
        files: Vec<PathBuf>,
        dirs: Vec<PathBuf>,
    },
    /// Object keys.
    Store(Vec<Path>),
}

impl PreviousOutput {
    /// Finds the previous job output at `location`; an error if anything else is there.
    pub(crate) async fn find(location: &Location) -> Result<PreviousOutput, StorageError> {
        match &location.url {
            StorageUrl::Local(dir) => {
                let (url, dir) = (location.url.clone(), dir.clone());
                blocking(&dir.clone(), move || scan_local(&url, &dir)).await
            }
            StorageUrl::S3 { .. } => scan_store(location).await,
        }
    }

    /// Deletes exactly what [`PreviousOutput::find`] found.
    pub(crate) async fn remove(self, location: &Location) -> Result<(), StorageError> {
        match self {
            PreviousOutput::Local { files, dirs } => {
                let StorageUrl::Local(root) = &location.url else {
                    unreachable!("local output is found at a local URL");
                };
                blocking(root, move || remove_local(&files, &dirs)).await
            }
            PreviousOutput::Store(paths) => {
                let paths = futures::stream::iter(paths.into_iter().map(Ok));
                location
                    .store
                    .delete_stream(Box::pin(paths))
                    .try_collect::<Vec<_>>()
                    .await
                    .map_err(location.error(&location.url))?;
                Ok(())
            }
        }
    }
}

/// Deletes the finished job output at `url`, as `--overwrite` would before a job, and on local
/// disk the emptied directory too: what a job chain does with an intermediate output it has
/// read. Output holding anything but job output is refused and left as it is.
pub async fn remove_output(url: &StorageUrl) -> Result<(), StorageError> {
    let location = url.locate()?;
    PreviousOutput::find(&location)
        .await?
        .remove(&location)
        .await?;
    let StorageUrl::Local(dir) = url else {
        return Ok(());
    };
    let root = dir.clone();
    blocking(dir, move || match std::fs::remove_dir(&root) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(StorageError::Local {
            path: root,
            source: e,
        }),
        _ => Ok(()),
    })
    .await
}

async fn blocking<T: Send + 'static>(
    path: &std::path::Path,
    work: impl FnOnce() -> Result<T, StorageError> + Send + 'static,
) -> Result<T, StorageError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| StorageError::Local {
            path: path.to_path_buf(),
            source: std::io::Error::other(e.to_string()),
        })?
}

fn all_digits(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

/// `part-r-00003` or `part-m-00003` (five digits or more).
fn is_part(name: &str) -> bool {
    name.strip_prefix("part-r-")
        .or_else(|| name.strip_prefix("part-m-"))
        .is_some_and(|n| n.len() >= 5 && all_digits(n))
}

/// The name a staging file `NAME#N` is written for, or `name` itself.
fn staged_for(name: &str) -> &str {
    match name.rsplit_once('#') {
        Some((base, n)) if all_digits(n) => base,
        _ => name,
    }
}

/// Whether a file at `parts` below the output is one a job writes.
fn is_job_file(parts: &[&str]) -> bool {
    match parts {
        [name] => {
            let name = staged_for(name);
            name == SUCCESS
                || is_part(name)
                || name.strip_prefix("_quern-probe-").is_some_and(all_digits)
        }
        [TEMPORARY, attempt, name] => is_attempt(attempt) && is_part(staged_for(name)),
        _ => false,
    }
}

/// Whether a directory at `parts` below the output is one a job makes.
fn is_job_dir(parts: &[&str]) -> bool {
    match parts {
        [TEMPORARY] => true,
        [TEMPORARY, attempt] => is_attempt(attempt),
        _ => false,
    }
}

fn is_attempt(name: &str) -> bool {
    name.strip_prefix("attempt-").is_some_and(all_digits)
}

fn scan_local(url: &StorageUrl, dir: &std::path::Path) -> Result<PreviousOutput, StorageError> {
    let mut found = (Vec::new(), Vec::new());
    let not_a_directory = |what| StorageError::OutputNotADirectory {
        url: url.to_string(),
        what,
    };
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(StorageError::LocalInput {
                path: dir.to_path_buf(),
                source,
            });
        }
        Ok(meta) if meta.file_type().is_symlink() => {
            return Err(not_a_directory("a symbolic link"));
        }
        Ok(meta) if !meta.is_dir() => return Err(not_a_directory("a file")),
        Ok(_) => scan_dir(url, dir, &mut Vec::new(), &mut found)?,
    }
    let (files, dirs) = found;
    Ok(PreviousOutput::Local { files, dirs })
}

/// Checks that every entry of `dir`, at `relative` below the output, is job output, and collects
/// them: files, and directories after their contents.
fn scan_dir(
    url: &StorageUrl,
    dir: &std::path::Path,
    relative: &mut Vec<String>,
    found: &mut (Vec<PathBuf>, Vec<PathBuf>),
) -> Result<(), StorageError> {
    let io_error = |path: &std::path::Path| {
        let path = path.to_path_buf();
        move |source| StorageError::LocalInput { path, source }
    };
    for entry in std::fs::read_dir(dir).map_err(io_error(dir))? {
        let entry = entry.map_err(io_error(dir))?;
        let path = entry.path();
        // Never follows a link: a link's type is "link".
        let kind = entry.file_type().map_err(io_error(&path))?;
        relative.push(entry.file_name().to_string_lossy().into_owned());
        let parts: Vec<&str> = relative.iter().map(String::as_str).collect();
        let utf8 = entry.file_name().to_str().is_some();
        if utf8 && kind.is_dir() && is_job_dir(&parts) {
            scan_dir(url, &path, relative, found)?;
            found.1.push(path);
        } else if utf8 && kind.is_file() && is_job_file(&parts) {
            found.0.push(path);
        } else {
            let suffix = if kind.is_dir() { "/" } else { "" };
            return Err(StorageError::NotJobOutput {
                url: url.to_string(),
                entry: format!("{}{suffix}", parts.join("/")),
            });
        }
        relative.pop();
    }
    Ok(())
}

fn remove_local(files: &[PathBuf], dirs: &[PathBuf]) -> Result<(), StorageError> {
    let gone = |result: std::io::Result<()>, path: &PathBuf| match result {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(StorageError::Local {
            path: path.clone(),
            source,
        }),
    };
    for file in files {
        gone(std::fs::remove_file(file), file)?;
    }
    // Deepest first; one that gained an entry since it was checked is not empty, and stays.
    for dir in dirs {
        gone(std::fs::remove_dir(dir), dir)?;
    }
    Ok(())
}

async fn scan_store(location: &Location) -> Result<PreviousOutput, StorageError> {
    let listed: Vec<_> = location
        .store
        .list(Some(&location.path))
        .try_collect()
        .await
        .map_err(location.error(&location.url))?;
    let mut paths = Vec::with_capacity(listed.len());
    for meta in listed {
        let relative: Vec<String> = meta
            .location
            .prefix_match(&location.path)
            .map(|parts| parts.map(|p| p.as_ref().to_string()).collect())
            .unwrap_or_default();
        let parts: Vec<&str> = relative.iter().map(String::as_str).collect();
        if !is_job_file(&parts) {
            return Err(StorageError::NotJobOutput {
                url: location.url.to_string(),
                entry: relative.join("/"),
            });
        }
        paths.push(meta.location);
    }
    Ok(PreviousOutput::Store(paths))
}

/// Refuses an output that is, or is inside, an input (for a glob input: whose part files the
/// glob would match), since a job over that input would read its own output, and with
/// `overwrite` an input inside the output, which the overwrite would delete. Local paths are
/// compared as given and with links resolved.
pub fn check_output_apart(
    output: &StorageUrl,
    inputs: &[StorageUrl],
    overwrite: bool,
) -> Result<(), StorageError> {
    for input in inputs {
        let glob_base = glob_base(input);
        let inside_input = match &glob_base {
            None => is_within(output, input),
            Some(_) => {
                let matches = glob_matcher(input)?;
                ["part-r-00000", "part-m-00000"]
                    .iter()
                    .any(|name| matches(&output.join(name)))
            }
        };
        if inside_input {
            return Err(StorageError::OutputInsideInput {
                output: output.to_string(),
                input: input.to_string(),
            });
        }
        if overwrite && is_within(glob_base.as_ref().unwrap_or(input), output) {
            return Err(StorageError::InputInsideOutput {
                output: output.to_string(),
                input: input.to_string(),
            });
        }
    }
    Ok(())
}

/// The base of a glob input; None for a literal one (a local path that exists is literal).
fn glob_base(input: &StorageUrl) -> Option<StorageUrl> {
    match input {
        StorageUrl::Local(path) if std::fs::symlink_metadata(path).is_ok() => None,
        _ => input.glob_base(),
    }
}

/// Whether `inner` is `outer` or lies below it.
fn is_within(inner: &StorageUrl, outer: &StorageUrl) -> bool {
    match (inner, outer) {
        (StorageUrl::Local(inner), StorageUrl::Local(outer)) => {
            inner.starts_with(outer) || resolved(inner).starts_with(resolved(outer))
        }
        (
            StorageUrl::S3 { bucket, key },
            StorageUrl::S3 {
                bucket: outer_bucket,
                key: outer_key,
            },
        ) if bucket == outer_bucket => {
            let (inner, outer) = (key.trim_end_matches('/'), outer_key.trim_end_matches('/'));
            outer.is_empty()
                || inner == outer
                || inner
                    .strip_prefix(outer)
                    .is_some_and(|rest| rest.starts_with('/'))
        }
        _ => false,
    }
}

/// `path` with links resolved, as far as it exists.
fn resolved(path: &std::path::Path) -> PathBuf {
    let mut missing = Vec::new();
    let mut existing = path;
    loop {
        if let Ok(real) = existing.canonicalize() {
            return missing.iter().rev().fold(real, |p, part| p.join(part));
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                missing.push(name);
                existing = parent;
            }
            _ => return path.to_path_buf(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::OutputDir;

    fn write(dir: &std::path::Path, name: &str, text: &str) {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    /// Every path below `dir`, links not followed, sorted.
    fn tree(dir: &std::path::Path) -> Vec<String> {
        let mut paths: Vec<String> = walkdir::WalkDir::new(dir)
            .min_depth(1)
            .into_iter()
            .map(|e| {
                let e = e.unwrap();
                e.path().strip_prefix(dir).unwrap().display().to_string()
            })
            .collect();
        paths.sort();
        paths
    }

    #[tokio::test]
    async fn overwrite_replaces_only_job_output() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        for name in [
            "_SUCCESS",
            "part-r-00000",
            "part-m-00012",
            "part-r-00001#3",
            "_temporary/attempt-7/part-r-00002",
            "_temporary/attempt-7/part-r-00002#1",
            "_quern-probe-42",
        ] {
            write(&out, name, "old\n");
        }
        std::fs::create_dir_all(out.join("_temporary/attempt-9")).unwrap();
        let output = OutputDir::open(&StorageUrl::Local(out.clone())).unwrap();
        output.prepare(true).await.unwrap();
        assert!(tree(&out).is_empty(), "{:?}", tree(&out));
        assert!(out.is_dir());
    }

    #[tokio::test]
    async fn removing_an_output_deletes_its_job_files_and_directory_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        for name in [
            "_SUCCESS",
            "part-r-00000",
            "_temporary/attempt-7/part-r-00002",
        ] {
            write(&out, name, "old\n");
        }
        remove_output(&StorageUrl::Local(out.clone()))
            .await
            .unwrap();
        assert!(!out.exists());
        remove_output(&StorageUrl::Local(out.clone()))
            .await
            .unwrap();
        write(&out, "part-r-00000", "old\n");
        write(&out, "notes.txt", "mine\n");
        let before = tree(&out);
        let err = remove_output(&StorageUrl::Local(out.clone())).await;
        assert!(err.unwrap_err().to_string().contains("holds 'notes.txt'"));
        assert_eq!(tree(&out), before);
    }

    #[tokio::test]
    async fn overwrite_refuses_anything_else_and_deletes_nothing() {
        let cases: [(&str, &str); 7] = [
            ("notes.txt", "notes.txt"),
            ("sub/thesis.tex", "sub/"),
            ("part-r-1", "part-r-1"),
            ("part-r-00000.bak", "part-r-00000.bak"),
            ("_temporary/notes", "_temporary/notes"),
            ("_temporary/attempt-1/x", "_temporary/attempt-1/x"),
            ("_SUCCESS#x", "_SUCCESS#x"),
        ];
        for (stray, named) in cases {
            let dir = tempfile::tempdir().unwrap();
            let out = dir.path().join("out");
            write(&out, "_SUCCESS", "");
            write(&out, "part-r-00000", "old\n");
            write(&out, stray, "mine\n");
            let before = tree(&out);
            let url = StorageUrl::Local(out.clone());
            let err = OutputDir::open(&url)
                .unwrap()
                .prepare(true)
                .await
                .unwrap_err();
            assert!(
                err.to_string().starts_with(&format!(
                    "--overwrite refused: output {url} holds '{named}'"
                )),
                "{err}"
            );
            assert_eq!(tree(&out), before);
        }
    }

    #[tokio::test]
    async fn overwrite_never_follows_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = dir.path().join("elsewhere");
        write(&elsewhere, "part-r-00000", "not yours\n");
        let out = dir.path().join("out");
        write(&out, "part-r-00000", "old\n");
        // A link with a job output's name, to a directory holding job output's names.
        std::os::unix::fs::symlink(&elsewhere, out.join("_temporary")).unwrap();
        let url = StorageUrl::Local(out.clone());
        let err = OutputDir::open(&url)
            .unwrap()
            .prepare(true)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("holds '_temporary'"), "{err}");
        // The output itself a link.
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&elsewhere, &link).unwrap();
        let url = StorageUrl::Local(link);
        let err = OutputDir::open(&url)
            .unwrap()
            .prepare(true)
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("--overwrite refused: output {url} is a symbolic link, not a directory")
        );
        assert!(out.join("part-r-00000").is_file());
        assert!(elsewhere.join("part-r-00000").is_file());
    }

    fn local(path: &str) -> StorageUrl {
        StorageUrl::Local(PathBuf::from(path))
    }

    #[test]
    fn an_output_inside_an_input_is_refused() {
        let refused = [
            ("/data/in", "/data/in"),
            ("/data/in/out", "/data/in"),
            ("/data/in/a/b", "/data"),
            ("s3://b/in/out", "s3://b/in/"),
            ("s3://b/in", "s3://b/in"),
            ("s3://b/x", "s3://b"),
            ("/logs/2026/out", "/logs/*/*/part-*"),
        ];
        for (output, input) in refused {
            let (output, input) = (
                StorageUrl::parse(output).unwrap(),
                StorageUrl::parse(input).unwrap(),
            );
            let err = check_output_apart(&output, std::slice::from_ref(&input), false).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!(
                    "output {output} is, or is inside, input {input}; a job must not write where it reads"
                )
            );
        }
        let allowed = [
            ("/data/input-out", "/data/in"),
            ("/data/out", "/data/in"),
            ("s3://b/input2", "s3://b/input"),
            ("s3://c/in", "s3://b/in"),
            ("/logs/2026/out", "/logs/*.log"),
        ];
        for (output, input) in allowed {
            let output = StorageUrl::parse(output).unwrap();
            check_output_apart(&output, &[StorageUrl::parse(input).unwrap()], true).unwrap();
        }
    }

    #[test]
    fn with_overwrite_an_input_inside_the_output_is_refused() {
        let output = local("/data/out");
        let input = local("/data/out/part-r-00000");
        check_output_apart(&output, std::slice::from_ref(&input), false).unwrap();
        let err = check_output_apart(&output, &[input], true).unwrap_err();
        assert!(
            err.to_string().contains("which --overwrite would delete"),
            "{err}"
        );
    }

    #[test]
    fn an_output_reached_through_a_link_into_the_input_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in");
        std::fs::create_dir(&input).unwrap();
        std::os::unix::fs::symlink(&input, dir.path().join("link")).unwrap();
        let output = StorageUrl::Local(dir.path().join("link/out"));
        let err = check_output_apart(&output, &[StorageUrl::Local(input)], false).unwrap_err();
        assert!(
            matches!(err, StorageError::OutputInsideInput { .. }),
            "{err}"
        );
    }
}
