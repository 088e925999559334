//! The output rules of `corrflow::io::output`: only regular files are replaced, symbolic links are followed
//! (the target is replaced, the link stays), devices, FIFOs and directories are refused and left as they
//! were, a missing directory is named, an output never equals an input or another output, and no temporary
//! file survives a failure. Meant to pass as root too, where permission bits stop nothing: `/dev/full` and
//! `/dev/null` must still be refused, not replaced by regular files.

mod common;

use common::{entries, TempDir};
use corrflow::io::{check_distinct, check_output, write_atomic, write_flo, OutputSet};
use corrflow::{Error, Flow};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

/// Asserts `result` is an [`Error::Output`] whose message contains every needle and no temporary name.
fn assert_output_error<T: std::fmt::Debug>(result: corrflow::Result<T>, needles: &[&str]) -> String {
    let err = result.expect_err("expected the output to be refused");
    let message = err.to_string();
    assert!(matches!(err, Error::Output { .. }), "not an Error::Output: {message}");
    for needle in needles {
        assert!(message.contains(needle), "error `{message}` does not mention `{needle}`");
    }
    assert!(!message.contains(".tmp-"), "error `{message}` names a temporary file");
    message
}

#[test]
fn symlink_target_is_replaced_and_link_kept() {
    let dir = TempDir::new("symlink");
    let target = dir.join("real.bin");
    std::fs::write(&target, b"old").unwrap();
    let link = dir.join("link.bin");
    std::os::unix::fs::symlink("real.bin", &link).unwrap(); // relative link, resolved against its directory
    write_atomic(&link, b"new contents").unwrap();
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "the link was replaced");
    assert_eq!(std::fs::read_link(&link).unwrap(), Path::new("real.bin"));
    assert_eq!(std::fs::read(&target).unwrap(), b"new contents");
    assert_eq!(entries(&dir), ["link.bin", "real.bin"]);

    // A chain of two links, through a format writer.
    let link2 = dir.join("link2.flo");
    std::os::unix::fs::symlink(&link, &link2).unwrap();
    write_flo(&link2, &Flow::zeros(2, 1)).unwrap();
    assert!(std::fs::symlink_metadata(&link2).unwrap().file_type().is_symlink());
    assert_eq!(std::fs::read(&target).unwrap().len(), 12 + 2 * 8);

    // check_output reports the real target.
    let checked = check_output(&link2).unwrap();
    assert_eq!(checked.path, link2);
    assert_eq!(checked.target, std::fs::canonicalize(&target).unwrap());
    assert!(checked.exists);

    // A dangling link: its target is created, the link stays.
    let dangling = dir.join("dangling.bin");
    std::os::unix::fs::symlink("created.bin", &dangling).unwrap();
    assert!(!check_output(&dangling).unwrap().exists);
    write_atomic(&dangling, b"x").unwrap();
    assert!(std::fs::symlink_metadata(&dangling).unwrap().file_type().is_symlink());
    assert_eq!(std::fs::read(dir.join("created.bin")).unwrap(), b"x");

    // A loop of links is an error, not a hang.
    std::os::unix::fs::symlink("loop_b", dir.join("loop_a")).unwrap();
    std::os::unix::fs::symlink("loop_a", dir.join("loop_b")).unwrap();
    assert_output_error(write_atomic(&dir.join("loop_a"), b"x"), &["loop_a", "symbolic links"]);
    assert_eq!(entries(&dir), ["created.bin", "dangling.bin", "link.bin", "link2.flo", "loop_a", "loop_b", "real.bin"]);
}

#[test]
fn fifo_is_refused_and_left_alone() {
    let dir = TempDir::new("fifo");
    let fifo = dir.join("pipe.flo");
    match Command::new("mkfifo").arg(&fifo).status() {
        Ok(status) if status.success() => {}
        other => {
            eprintln!("skipping: mkfifo unavailable ({other:?})");
            return;
        }
    }
    assert_output_error(write_atomic(&fifo, b"data"), &["pipe.flo", "FIFO"]);
    assert_output_error(check_output(&fifo), &["pipe.flo", "FIFO"]);
    assert_output_error(write_flo(&fifo, &Flow::zeros(1, 1)), &["pipe.flo", "FIFO"]);
    // Through a symbolic link, the message names the link and what it points to.
    let link = dir.join("to_pipe.flo");
    std::os::unix::fs::symlink(&fifo, &link).unwrap();
    assert_output_error(write_atomic(&link, b"data"), &["to_pipe.flo", "FIFO", "symbolic link"]);
    assert!(std::fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo(), "the FIFO was replaced");
    assert_eq!(entries(&dir), ["pipe.flo", "to_pipe.flo"]);
}

#[test]
fn device_nodes_are_refused_even_as_root() {
    for device in ["/dev/null", "/dev/full"] {
        let path = Path::new(device);
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_char_device() => {}
            _ => {
                eprintln!("skipping {device}: not present as a character device");
                continue;
            }
        }
        assert_output_error(write_atomic(path, b"data"), &[device, "character device"]);
        assert_output_error(check_output(path), &[device, "character device"]);
        assert_output_error(write_flo(path, &Flow::zeros(1, 1)), &[device, "character device"]);
        assert!(std::fs::symlink_metadata(path).unwrap().file_type().is_char_device(), "{device} was replaced");
        let leftovers: Vec<String> = entries(Path::new("/dev")).into_iter().filter(|n| n.contains(".tmp-")).collect();
        assert!(leftovers.is_empty(), "temporary files left in /dev: {leftovers:?}");
    }
}

#[test]
fn directory_is_refused() {
    let dir = TempDir::new("directory");
    let sub = dir.join("out.flo");
    std::fs::create_dir(&sub).unwrap();
    assert_output_error(write_atomic(&sub, b"data"), &["out.flo", "a directory"]);
    assert_output_error(check_output(&sub), &["out.flo", "a directory"]);
    // A path that names a directory by its spelling.
    assert_output_error(write_atomic(&dir.join("x.flo/"), b"data"), &["x.flo", "names a directory"]);
    assert_output_error(write_atomic(&dir.join(".."), b"data"), &["names a directory"]);
    assert!(sub.is_dir());
    assert_eq!(entries(&dir), ["out.flo"]);
    assert!(entries(&sub).is_empty());
}

#[test]
fn missing_or_non_directory_parent_is_named() {
    let dir = TempDir::new("parent");
    let missing = dir.join("no/such/flow.flo");
    let message = assert_output_error(write_atomic(&missing, b"data"), &["flow.flo", "does not exist"]);
    let parent = dir.join("no/such");
    assert!(message.contains(&format!("directory {} does not exist", parent.display())), "{message}");
    assert!(message.starts_with(&format!("cannot write {}", missing.display())), "{message}");
    assert_output_error(check_output(&missing), &["no/such", "does not exist"]);
    assert_output_error(write_flo(&missing, &Flow::zeros(1, 1)), &["no/such", "does not exist"]);
    // A parent that is a file.
    std::fs::write(dir.join("file.bin"), b"x").unwrap();
    assert_output_error(write_atomic(&dir.join("file.bin/out.flo"), b"data"), &["out.flo", "not a directory"]);
    assert_eq!(entries(&dir), ["file.bin"]);
}

#[test]
fn unwritable_directory_is_found_before_the_work() {
    // /proc refuses new files even to root, where permission bits would not.
    let path = Path::new("/proc/corrflow-output-test.flo");
    if !Path::new("/proc/self").exists() {
        eprintln!("skipping: no /proc");
        return;
    }
    assert_output_error(check_output(path), &["corrflow-output-test.flo", "cannot create a file in directory /proc"]);
    assert!(!path.exists());
}

#[test]
fn check_output_leaves_nothing_behind() {
    let dir = TempDir::new("probe");
    let fresh = check_output(dir.join("new.flo")).unwrap();
    assert!(!fresh.exists);
    assert_eq!(fresh.target, std::fs::canonicalize(&dir).unwrap().join("new.flo"));
    std::fs::write(dir.join("old.flo"), b"keep").unwrap();
    assert!(check_output(dir.join("old.flo")).unwrap().exists);
    assert_eq!(std::fs::read(dir.join("old.flo")).unwrap(), b"keep");
    assert_eq!(entries(&dir), ["old.flo"]);
}

#[test]
fn replacement_keeps_permissions() {
    let dir = TempDir::new("permissions");
    let path = dir.join("private.safetensors");
    std::fs::write(&path, b"old").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    write_atomic(&path, b"new").unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(std::fs::read(&path).unwrap(), b"new");
}

#[test]
fn output_equal_to_an_input_is_refused() {
    let dir = TempDir::new("same");
    let input = dir.join("a.png");
    std::fs::write(&input, b"frame").unwrap();
    std::fs::create_dir(dir.join("sub")).unwrap();
    let a = input.display().to_string();

    // The same spelling.
    let message = assert_output_error(check_distinct(&[&input], &[&input]), &["same file as the input"]);
    assert_eq!(message.matches(&a).count(), 2, "both paths named: {message}");
    // Another spelling: ./sub/../a.png relative to the directory, written out in full.
    let dotted = dir.join("./sub/../a.png");
    assert_output_error(check_distinct(&[&input], &[&dotted]), &["sub/../a.png", &a]);
    // Through a symbolic link, either way round.
    let link = dir.join("link.png");
    std::os::unix::fs::symlink(&input, &link).unwrap();
    assert_output_error(check_distinct(&[&input], &[&link]), &["link.png", &a]);
    assert_output_error(check_distinct(&[&link], &[&input]), &["link.png", &a]);
    // A hard link is the same file too.
    let hard = dir.join("hard.png");
    std::fs::hard_link(&input, &hard).unwrap();
    assert_output_error(check_distinct(&[&input], &[&hard]), &["hard.png"]);
    // A relative spelling from the working directory.
    let cwd = std::env::current_dir().unwrap();
    if let Ok(relative) = input.strip_prefix(&cwd) {
        let relative = Path::new(".").join(relative);
        assert_output_error(check_distinct(&[&input], &[&relative]), &[&a]);
    }
    // Two outputs on one not-yet-existing file.
    let flow = dir.join("flow.png");
    let flow_dotted = dir.join("sub/../flow.png");
    let message = assert_output_error(
        check_distinct::<&Path, _>(&[], &[&dir.join("out.flo"), &flow, &flow_dotted]),
        &["same file as the output", "flow.png"],
    );
    assert!(message.contains("sub/../flow.png"), "{message}");
    // Distinct paths pass, and OutputSet::check applies both checks.
    check_distinct(&[&input], &[&flow, &dir.join("out.flo")]).unwrap();
    assert!(OutputSet::check(&[&input], &[&flow, &input]).is_err());
    assert!(OutputSet::check(&[&input], &[&flow, &flow]).is_err());
    OutputSet::check(&[&input], &[&flow, &dir.join("out.flo")]).unwrap();
    assert_eq!(std::fs::read(&input).unwrap(), b"frame");
    assert_eq!(entries(&dir), ["a.png", "hard.png", "link.png", "sub"]);
}

#[test]
fn output_set_writes_all_or_touches_nothing() {
    let dir = TempDir::new("set");
    let first = dir.join("flow.flo");
    std::fs::write(&first, b"old flow").unwrap();
    std::fs::create_dir(dir.join("vis")).unwrap();
    let second = dir.join("vis/flow.png");
    let set = OutputSet::check::<&Path, _>(&[], &[&first, &second]).unwrap();
    assert_eq!(set.outputs().len(), 2);
    assert!(set.outputs()[0].exists && !set.outputs()[1].exists);

    // The second directory disappears between the check and the write: nothing is replaced.
    std::fs::remove_dir(dir.join("vis")).unwrap();
    assert_output_error(set.write(&[(&first, b"new flow"), (&second, b"png")]), &["vis/flow.png", "does not exist"]);
    assert_eq!(std::fs::read(&first).unwrap(), b"old flow");
    assert_eq!(entries(&dir), ["flow.flo"]);

    // A path that was not checked, or one given twice, is refused before anything is written.
    std::fs::create_dir(dir.join("vis")).unwrap();
    assert_output_error(set.write(&[(&dir.join("other.flo"), b"x")]), &["other.flo", "not among the outputs"]);
    assert_output_error(set.write(&[(&first, b"a"), (&first, b"b")]), &["flow.flo", "twice"]);
    assert_eq!(std::fs::read(&first).unwrap(), b"old flow");

    // Both written.
    set.write(&[(&first, b"new flow"), (&second, b"png")]).unwrap();
    assert_eq!(std::fs::read(&first).unwrap(), b"new flow");
    assert_eq!(std::fs::read(&second).unwrap(), b"png");
    assert_eq!(entries(&dir), ["flow.flo", "vis"]);
    assert_eq!(entries(&dir.join("vis")), ["flow.png"]);

    // The second target turns into a directory after the check: found when the write re-checks every
    // target, before any rename, so the first output keeps its contents too.
    std::fs::remove_file(&second).unwrap();
    std::fs::create_dir(&second).unwrap();
    assert_output_error(set.write(&[(&first, b"third"), (&second, b"png")]), &["vis/flow.png", "a directory"]);
    assert_eq!(std::fs::read(&first).unwrap(), b"new flow");
    assert_eq!(entries(&dir), ["flow.flo", "vis"]);
    assert_eq!(entries(&dir.join("vis")), ["flow.png"]);
    assert!(entries(&second).is_empty());
}
