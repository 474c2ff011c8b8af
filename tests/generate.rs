//! `retentiond generate` (hidden): the man pages and the completion scripts
//! the Debian package ships are made from the command line's definition.

#[macro_use]
mod common;

use common::*;

#[test]
fn man_pages_cover_every_visible_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("man/man1");
    Invocation::new(&["generate", "man", out_dir.to_str().unwrap()]).run().expect_code(0);

    let mut pages: Vec<String> =
        std::fs::read_dir(&out_dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    pages.sort();
    for page in
        ["retentiond.1", "retentiond-run.1", "retentiond-purge.1", "retentiond-jobs-create.1", "retentiond-runs-list.1"]
    {
        assert!(pages.iter().any(|p| p == page), "no {page} among {pages:?}");
    }
    assert!(!pages.iter().any(|p| p.contains("generate")), "the hidden subcommand has a page: {pages:?}");

    let purge = std::fs::read_to_string(out_dir.join("retentiond-purge.1")).unwrap();
    assert!(purge.starts_with(".ie"), "not roff: {}", &purge[..purge.len().min(200)]);
    for option in [r"\-\-dry\-run", r"\-\-max\-deletes", r"\-\-metrics\-textfile"] {
        assert!(purge.contains(option), "retentiond-purge.1 does not document {option}");
    }
    let main = std::fs::read_to_string(out_dir.join("retentiond.1")).unwrap();
    assert!(main.contains("check\\-config") && main.contains(env!("CARGO_PKG_VERSION")), "retentiond.1:\n{main}");
}

#[test]
fn man_pages_into_a_directory_that_cannot_exist_fail_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let target = file.join("man");
    let out = Invocation::new(&["generate", "man", target.to_str().unwrap()]).run();
    out.expect_code(1);
    assert!(out.stderr.contains(target.to_str().unwrap()), "{}", out.describe());
}

#[test]
fn completions_for_bash_zsh_and_fish_name_the_subcommands_and_their_options() {
    for (shell, marker) in [("bash", "complete -F"), ("zsh", "#compdef retentiond"), ("fish", "complete -c retentiond")]
    {
        let out = Invocation::new(&["generate", "completions", shell]).run();
        out.expect_code(0);
        for word in [marker, "purge", "check-config", "dry-run", "max-deletes"] {
            assert!(out.stdout.contains(word), "{shell} completions lack {word:?}\n{}", out.describe());
        }
    }
    Invocation::new(&["generate", "completions", "tcsh"]).run().expect_code(2);
}

#[test]
fn generate_is_not_listed_in_help() {
    let out = Invocation::new(&["--help"]).run();
    out.expect_code(0);
    assert!(out.stdout.contains("check-config") && !out.stdout.contains("generate"), "{}", out.describe());
}
