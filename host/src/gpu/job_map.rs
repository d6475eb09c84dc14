//! DCGM's HPC job mapping: a directory with one file per GPU index holding the ids of the jobs
//! on that GPU, one per line, as Slurm's prolog scripts write it for dcgm-exporter
//! (`--hpc-job-mapping-dir`). An exporter started on it labels every metric of a GPU with the
//! gantry jobs on it (`hpc_job`), as it does Slurm's, with no change on its side.
//!
//! Gantry owns the files named by a GPU index there and leaves any other alone. A file is
//! replaced whole (written beside it, then renamed), so a reader never sees half of one; a GPU
//! with no job has no file. The files stay when the daemon stops: its jobs keep running under
//! their shims, and the next start rewrites them.

use crate::model::JobId;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

/// Makes `dir` say which of `running` (a job and its GPUs) is on each GPU. Blocks (files).
pub fn write(dir: &Path, running: &[(JobId, Vec<u32>)]) -> std::io::Result<()> {
    let mut on: BTreeMap<u32, Vec<JobId>> = BTreeMap::new();
    for (job, gpus) in running {
        for gpu in gpus {
            on.entry(*gpu).or_default().push(*job);
        }
    }
    std::fs::create_dir_all(dir)?;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let ours = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok());
        if ours.is_some_and(|gpu| !on.contains_key(&gpu)) {
            std::fs::remove_file(entry.path())?;
        }
    }
    for (gpu, mut jobs) in on {
        jobs.sort();
        let text: String = jobs.iter().map(|job| format!("{job}\n")).collect();
        let path = dir.join(gpu.to_string());
        if std::fs::read_to_string(&path).is_ok_and(|now| now == text) {
            continue;
        }
        let temp = dir.join(format!(".{gpu}.new"));
        let _ = std::fs::remove_file(&temp);
        // A file of its own (never one a link points to), readable by the exporter's user.
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).open(&temp)?;
        file.write_all(text.as_bytes())?;
        std::fs::rename(&temp, &path)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(dir: &Path) -> BTreeMap<String, String> {
        std::fs::read_dir(dir).expect("dir").flatten().map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read_to_string(e.path()).expect("file"))).collect()
    }

    #[test]
    fn each_gpu_with_jobs_has_a_file_of_their_ids_and_a_gpu_without_none_and_other_files_stay() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("README"), "not gantry's").expect("write");
        write(dir.path(), &[(JobId(7), vec![0, 2]), (JobId(3), vec![2])]).expect("written");
        let seen = read(dir.path());
        assert_eq!(seen.get("0").map(String::as_str), Some("7\n"));
        assert_eq!(seen.get("2").map(String::as_str), Some("3\n7\n"));
        assert_eq!(seen.len(), 3, "{seen:?}");
        write(dir.path(), &[(JobId(3), vec![2])]).expect("written");
        let seen = read(dir.path());
        assert_eq!((seen.get("0"), seen.get("2").map(String::as_str), seen.get("README").map(String::as_str)), (None, Some("3\n"), Some("not gantry's")));
        write(dir.path(), &[]).expect("written");
        assert_eq!(read(dir.path()).into_keys().collect::<Vec<_>>(), ["README"]);
    }
}
