//! Submitting a job: checks before anything is staged (inputs, output, shipped files, streaming
//! commands, path arguments, the JobTracker container's settings), staging in the DFS, and the
//! application submission with the JobTracker as its master.

use super::error::{dfs_err, JobClientError, JobClientResult};
use super::{
    JobClient, AM_MAX_ATTEMPTS_KEY, AM_MEMORY_KEY, AM_VCORES_KEY, BINARY_KEY,
    DEFAULT_AM_MAX_ATTEMPTS, DEFAULT_AM_MEMORY_MB, DEFAULT_QUEUE, JOB_NAME_KEY, QUEUE_KEY,
    USER_KEY,
};
use crate::cluster::layout::{files_dir, plugin_file, shipped_file, staging_dir, submission_file};
use crate::cluster::submission::{
    job_id_of_application, JobProgram, JobSubmission, APPLICATION_NAME_PREFIX, JOBTRACKER_COMMAND,
    PLUGIN_LINK_NAME, SHIPPED_FILES_KEY,
};
use sheaf_dfs::uri::DfsUri;
use sheaf_yarn::protocol::{AppId, LaunchSpec, Resource, SubmitApplication};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

/// A job accepted by the ResourceManager.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubmittedJob {
    /// The job id (`job_<cluster>_<seq>`).
    pub job_id: String,
    /// Its application.
    pub application: AppId,
    /// The DFS staging directory holding the submission.
    pub staging_dir: String,
}

/// How to submit, besides the [`JobSubmission`] itself.
#[derive(Debug, Clone)]
pub struct SubmitOptions {
    /// Queue; `None`: `mapreduce.job.queuename` of the job's configuration, else "default".
    pub queue: Option<String>,
    /// The plugin library to stage as `job.so` (plugin jobs only).
    pub plugin: Option<PathBuf>,
    /// The `sheaf` binary the JobTracker container runs (overridden by [`BINARY_KEY`]).
    pub sheaf_binary: PathBuf,
    /// Local files to ship with the job (`--file`): staged, and localized into every task
    /// container's working dir under their file names.
    pub files: Vec<PathBuf>,
}

impl JobClient {
    /// Refuses a job whose inputs are missing or whose output exists (Hadoop's checks, before
    /// anything is staged).
    pub async fn check_paths(&self, inputs: &[String], output: &str) -> JobClientResult<()> {
        for input in inputs {
            let found = self
                .dfs
                .status(input)
                .await
                .map_err(dfs_err(format!("checking input {input}")))?;
            if found.is_none() {
                return Err(JobClientError::InputMissing(input.clone()));
            }
        }
        let out = self
            .dfs
            .status(output)
            .await
            .map_err(dfs_err(format!("checking output {output}")))?;
        if out.is_some() {
            return Err(JobClientError::OutputExists(output.to_string()));
        }
        Ok(())
    }

    /// Checks the paths, stages the submission (and the plugin) under
    /// `STAGING_ROOT/<user>/<unique>/` and submits the JobTracker to the ResourceManager.
    /// The staging directory is removed again when the submission fails.
    pub async fn submit(
        &self,
        mut submission: JobSubmission,
        options: &SubmitOptions,
    ) -> JobClientResult<SubmittedJob> {
        submission.files = shipped_names(&options.files)?;
        check_streaming_commands(&submission.program, &submission.files)?;
        self.check_paths(&submission.inputs, &submission.output)
            .await?;
        let queue = options
            .queue
            .clone()
            .or_else(|| submission.conf.get(QUEUE_KEY).cloned())
            .filter(|q| !q.is_empty())
            .unwrap_or_else(|| DEFAULT_QUEUE.to_string());
        let (am_resource, max_attempts) = am_settings(&submission.conf)?;
        let binary = submission
            .conf
            .get(BINARY_KEY)
            .map(PathBuf::from)
            .unwrap_or_else(|| options.sheaf_binary.clone());
        // Recorded in the configuration so the history is self-describing (Hadoop does the same).
        submission
            .conf
            .insert(JOB_NAME_KEY.into(), submission.name.clone());
        submission
            .conf
            .insert(USER_KEY.into(), submission.user.clone());
        submission.conf.insert(QUEUE_KEY.into(), queue.clone());
        if !submission.files.is_empty() {
            submission
                .conf
                .insert(SHIPPED_FILES_KEY.into(), submission.files.join(","));
        }

        let staging = staging_dir(&submission.user, submission.submit_ms);
        let staged = self.stage(&staging, &submission, options).await;
        let result = match staged {
            Ok(()) => self
                .rm
                .submit(SubmitApplication {
                    name: format!("{APPLICATION_NAME_PREFIX} {}", submission.name),
                    user: submission.user.clone(),
                    queue,
                    am_resource,
                    am_spec: LaunchSpec {
                        command: vec![
                            binary.display().to_string(),
                            JOBTRACKER_COMMAND.to_string(),
                            "--staging".to_string(),
                            staging.clone(),
                        ],
                        ..LaunchSpec::default()
                    },
                    max_attempts,
                })
                .await
                .map_err(JobClientError::from),
            Err(e) => Err(e),
        };
        match result {
            Ok(application) => Ok(SubmittedJob {
                job_id: job_id_of_application(&application.to_string()),
                application,
                staging_dir: staging,
            }),
            Err(e) => {
                // Best effort: the submission failed already, a failed cleanup adds nothing.
                let _ = self.dfs.delete(&staging, true).await;
                Err(e)
            }
        }
    }

    async fn stage(
        &self,
        staging: &str,
        submission: &JobSubmission,
        options: &SubmitOptions,
    ) -> JobClientResult<()> {
        self.dfs
            .mkdirs(staging, true)
            .await
            .map_err(dfs_err(format!("creating the staging directory {staging}")))?;
        if !options.files.is_empty() {
            let dir = files_dir(staging);
            self.dfs
                .mkdirs(&dir, true)
                .await
                .map_err(dfs_err(format!("creating {dir}")))?;
        }
        // `submit` named the files after these paths, in this order.
        for (path, name) in options.files.iter().zip(&submission.files) {
            let target = shipped_file(staging, name);
            self.dfs
                .copy_from_local(path, &target, false, None)
                .await
                .map_err(dfs_err(format!("uploading {} to {target}", path.display())))?;
        }
        if let Some(plugin) = options.plugin.as_deref() {
            let target = plugin_file(staging);
            self.dfs
                .copy_from_local(plugin, &target, false, None)
                .await
                .map_err(dfs_err(format!(
                    "uploading the plugin {} to {target}",
                    plugin.display()
                )))?;
        }
        let bytes = rmp_serde::to_vec_named(submission)
            .map_err(|e| JobClientError::Encode(e.to_string()))?;
        let target = submission_file(staging);
        self.dfs
            .write_file(&target, &bytes, false)
            .await
            .map_err(dfs_err(format!("writing {target}")))?;
        Ok(())
    }
}

/// The names shipped files get in the containers (their file names); each must be a regular
/// local file and the names distinct.
pub fn shipped_names(files: &[PathBuf]) -> JobClientResult<Vec<String>> {
    let mut names: Vec<String> = Vec::new();
    for path in files {
        let bad = |reason: &str| JobClientError::BadShippedFile {
            path: path.display().to_string(),
            reason: reason.to_string(),
        };
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|n| !n.is_empty() && !n.starts_with('.') && !n.contains(','))
            .ok_or_else(|| bad("needs a plain UTF-8 file name not starting with '.'"))?;
        if !path.is_file() {
            return Err(bad("not a regular file"));
        }
        if names.iter().any(|n| n == name) {
            return Err(bad("another shipped file has the same name"));
        }
        if name == PLUGIN_LINK_NAME {
            return Err(bad("the name is the job's plugin's"));
        }
        names.push(name.to_string());
    }
    Ok(names)
}

/// Refuses streaming commands whose first word is a relative path (`./map.py`, `bin/map`)
/// other than `./NAME` of a shipped file: task containers run in their own working dirs.
/// Bare words (`cat`, `python3`) are looked up on the nodes' `PATH` and left alone.
pub fn check_streaming_commands(program: &JobProgram, shipped: &[String]) -> JobClientResult<()> {
    let JobProgram::Streaming {
        mapper,
        combiner,
        reducer,
    } = program
    else {
        return Ok(());
    };
    let commands = [
        ("mapper", Some(mapper)),
        ("combiner", combiner.as_ref()),
        ("reducer", Some(reducer)),
    ];
    for (role, command) in commands {
        let Some(word) = command.and_then(|c| c.split_whitespace().next()) else {
            continue;
        };
        if word.starts_with('/') || !word.contains('/') {
            continue;
        }
        let shipped_here = word
            .strip_prefix("./")
            .is_some_and(|name| shipped.iter().any(|s| s == name));
        if !shipped_here {
            return Err(JobClientError::UnshippedCommand {
                role,
                word: word.to_string(),
            });
        }
    }
    Ok(())
}

/// Resolves a job path argument to an absolute DFS path: `/abs`, `sheaf:///abs`,
/// `sheaf://host:port/abs` naming this cluster's NameNode (`namenode`), or a path relative to
/// `home` (Hadoop's rule: relative paths are under the user's home directory).
pub fn resolve_dfs_path(arg: &str, home: &str, namenode: SocketAddr) -> JobClientResult<String> {
    let uri =
        DfsUri::parse_relative_to(arg, home).map_err(|e| JobClientError::BadPath(e.to_string()))?;
    match uri.namenode {
        Some(named) if !same_namenode(named, namenode) => Err(JobClientError::BadPath(format!(
            "{arg}: names the NameNode {named}, but cluster jobs read and write their own cluster's DFS ({namenode}); use sheaf:///path"
        ))),
        _ => Ok(uri.path),
    }
}

/// True when `a` and `b` are the same NameNode (an unspecified configured address matches any
/// address with its port).
fn same_namenode(a: SocketAddr, b: SocketAddr) -> bool {
    a == b || (a.port() == b.port() && (a.ip().is_unspecified() || b.ip().is_unspecified()))
}

/// The JobTracker container's size and attempt limit from the job configuration.
pub fn am_settings(conf: &BTreeMap<String, String>) -> JobClientResult<(Resource, u32)> {
    fn number<T: std::str::FromStr>(
        conf: &BTreeMap<String, String>,
        key: &str,
        default: T,
        expected: &'static str,
        valid: impl Fn(&T) -> bool,
    ) -> JobClientResult<T> {
        match conf.get(key) {
            None => Ok(default),
            Some(v) => {
                v.trim()
                    .parse::<T>()
                    .ok()
                    .filter(valid)
                    .ok_or_else(|| JobClientError::BadConf {
                        key: key.to_string(),
                        value: v.clone(),
                        expected,
                    })
            }
        }
    }
    let memory = number(
        conf,
        AM_MEMORY_KEY,
        DEFAULT_AM_MEMORY_MB,
        "a positive number of MB",
        |v| *v > 0,
    )?;
    let vcores = number(
        conf,
        AM_VCORES_KEY,
        1u32,
        "a positive number of vcores",
        |v| *v > 0,
    )?;
    let attempts = number(
        conf,
        AM_MAX_ATTEMPTS_KEY,
        DEFAULT_AM_MAX_ATTEMPTS,
        "a positive number of attempts",
        |v| *v > 0,
    )?;
    Ok((Resource::new(memory, vcores), attempts))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sheaf_dfs::client::home_dir;

    fn namenode() -> SocketAddr {
        "127.0.6.1:9000".parse().expect("addr")
    }

    #[test]
    fn paths_resolve_absolute_uri_and_relative_forms() {
        let home = home_dir("alice");
        assert_eq!(
            resolve_dfs_path("/data/in", &home, namenode()).unwrap(),
            "/data/in"
        );
        assert_eq!(
            resolve_dfs_path("/data//in/", &home, namenode()).unwrap(),
            "/data/in"
        );
        assert_eq!(
            resolve_dfs_path("sheaf:///data/in", &home, namenode()).unwrap(),
            "/data/in"
        );
        assert_eq!(
            resolve_dfs_path("sheaf://127.0.6.1:9000/data", &home, namenode()).unwrap(),
            "/data"
        );
        assert_eq!(
            resolve_dfs_path("in/a.txt", &home, namenode()).unwrap(),
            "/user/alice/in/a.txt"
        );
        assert_eq!(
            resolve_dfs_path("out", &home, namenode()).unwrap(),
            "/user/alice/out"
        );
    }

    #[test]
    fn paths_of_other_clusters_or_schemes_are_refused() {
        let home = home_dir("alice");
        let other = resolve_dfs_path("sheaf://127.0.9.1:9000/x", &home, namenode());
        assert!(matches!(other, Err(JobClientError::BadPath(m)) if m.contains("127.0.9.1:9000")));
        assert!(resolve_dfs_path("file:///tmp/x", &home, namenode()).is_err());
        assert!(resolve_dfs_path("../x", &home, namenode()).is_err());
        assert!(resolve_dfs_path("", &home, namenode()).is_err());
    }

    #[test]
    fn am_settings_have_hadoop_defaults_and_refuse_garbage() {
        let mut conf = BTreeMap::new();
        assert_eq!(am_settings(&conf).unwrap(), (Resource::new(512, 1), 2));
        conf.insert(AM_MEMORY_KEY.to_string(), "1024".to_string());
        conf.insert(AM_MAX_ATTEMPTS_KEY.to_string(), "1".to_string());
        assert_eq!(am_settings(&conf).unwrap(), (Resource::new(1024, 1), 1));
        conf.insert(AM_MEMORY_KEY.to_string(), "lots".to_string());
        let err = am_settings(&conf).unwrap_err().to_string();
        assert!(err.contains(AM_MEMORY_KEY) && err.contains("lots"), "{err}");
        conf.insert(AM_MEMORY_KEY.to_string(), "512".to_string());
        conf.insert(AM_MAX_ATTEMPTS_KEY.to_string(), "0".to_string());
        assert!(am_settings(&conf).is_err());
    }

    #[test]
    fn relative_streaming_commands_must_be_shipped() {
        let streaming = |mapper: &str, combiner: Option<&str>| JobProgram::Streaming {
            mapper: mapper.into(),
            combiner: combiner.map(str::to_string),
            reducer: "wc -l".into(),
        };
        let shipped = vec!["map.py".to_string()];
        for ok in [
            "cat",
            "python3 map.py",
            "/usr/bin/tr a-z A-Z",
            "./map.py --x",
        ] {
            check_streaming_commands(&streaming(ok, None), &shipped).expect(ok);
        }
        let e = check_streaming_commands(&streaming("./map.py", None), &[]).expect_err("unshipped");
        assert!(
            e.to_string().contains("--file") && e.to_string().contains("mapper"),
            "{e}"
        );
        for bad in ["bin/map", "./other.py", "../map.py"] {
            let e = check_streaming_commands(&streaming(bad, None), &shipped).expect_err(bad);
            assert!(matches!(e, JobClientError::UnshippedCommand { .. }), "{e}");
        }
        let e = check_streaming_commands(&streaming("cat", Some("./comb.sh")), &shipped)
            .expect_err("combiner");
        assert!(e.to_string().contains("combiner"), "{e}");
        check_streaming_commands(&JobProgram::Plugin, &[]).expect("plugins run no commands");
    }

    #[test]
    fn shipped_files_are_named_after_existing_files_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let map = dir.path().join("map.py");
        std::fs::write(&map, "#!/bin/sh\ncat\n").expect("write");
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).expect("mkdir");
        std::fs::write(sub.join("map.py"), "x").expect("write");
        assert_eq!(
            shipped_names(std::slice::from_ref(&map)).expect("ok"),
            vec!["map.py"]
        );
        for bad in [
            vec![map.clone(), sub.join("map.py")],
            vec![dir.path().join("missing.py")],
            vec![sub.clone()],
        ] {
            let e = shipped_names(&bad).expect_err("refused");
            assert!(matches!(e, JobClientError::BadShippedFile { .. }), "{e}");
        }
        assert_eq!(shipped_file("/s/u/1-x/", "map.py"), "/s/u/1-x/files/map.py");
    }

    #[test]
    fn submissions_encode_with_named_fields() {
        let sub = JobSubmission {
            name: "wc".into(),
            user: "alice".into(),
            inputs: vec!["/in".into()],
            output: "/out".into(),
            reducers: 2,
            split_size: None,
            conf: BTreeMap::new(),
            program: JobProgram::Plugin,
            submit_ms: 1,
            files: vec!["map.py".into()],
        };
        let bytes = rmp_serde::to_vec_named(&sub).expect("encode");
        // Named fields: the field names are in the bytes, so readers tolerate reordering.
        assert!(bytes.windows(6).any(|w| w == b"inputs"));
        let back: JobSubmission = rmp_serde::from_slice(&bytes).expect("decode");
        assert_eq!(back, sub);
    }
}
