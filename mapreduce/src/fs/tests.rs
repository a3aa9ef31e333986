use super::*;
use std::io::{Read, Seek, SeekFrom, Write};

fn local(p: &std::path::Path) -> JobPath {
    JobPath::Local(p.to_path_buf())
}

#[test]
fn local_fs_lists_inputs_like_hadoop_and_round_trips_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fs = LocalFs;
    let root = local(dir.path());
    fs.mkdirs(&root.join("in")).expect("mkdirs");
    for (name, body) in [
        ("b", "bee\n"),
        ("a", "ay\n"),
        ("_SUCCESS", ""),
        (".crc", "x"),
    ] {
        let mut w = fs.create(&root.join("in").join(name)).expect("create");
        w.write_all(body.as_bytes()).expect("write");
        w.close().expect("close");
    }
    fs.mkdirs(&root.join("in").join("sub")).expect("mkdirs");
    let files = fs.input_files(&root.join("in")).expect("list");
    let names: Vec<_> = files.iter().filter_map(|f| f.path.file_name()).collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(files[1].len, 4);
    // A file stands for itself; a missing path is NotFound.
    assert_eq!(fs.input_files(&files[0].path).expect("file").len(), 1);
    assert!(matches!(
        fs.input_files(&root.join("nope")),
        Err(FsError::NotFound(_))
    ));
    // Creating over an existing file and renaming onto one are refused.
    assert!(matches!(
        fs.create(&files[0].path).map(|_| ()),
        Err(FsError::AlreadyExists(_))
    ));
    assert!(fs.rename(&files[0].path, &files[1].path).is_err());
    fs.rename(&files[0].path, &root.join("in").join("c"))
        .expect("rename");
    let mut r = fs.open(&root.join("in").join("c")).expect("open");
    r.seek(SeekFrom::Start(1)).expect("seek");
    let mut s = String::new();
    r.read_to_string(&mut s).expect("read");
    assert_eq!(s, "y\n");
    assert!(fs.delete(&root.join("in"), true).expect("delete"));
    assert!(!fs.exists(&root.join("in")).expect("exists"));
    assert!(!fs.delete(&root.join("in"), true).expect("delete again"));
}

#[test]
fn dfs_paths_without_dfs_access_are_refused_clearly() {
    let fss = JobFileSystems::local_only();
    let p = JobPath::parse("sheaf:///data").expect("parse");
    let err = fss.for_path(&p).err().expect("must refuse");
    assert!(err.to_string().contains("sheaf:///data"), "{err}");
    assert!(LocalFs.status(&p).is_err());
}
