//! `ingesta build`, `ingesta new` and `ingesta hash-token`: a handler
//! project into a component, a new project, a token's hash.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::build::{self, BuildOptions, Language};

/// Build the project in `dir` into a component.
pub(super) fn build(dir: PathBuf, out: Option<PathBuf>, lang: Option<Language>) -> Result<()> {
    let built = build::build(&BuildOptions {
        dir: dir.clone(),
        out,
        lang,
        cache: build::default_cache(),
    })
    .with_context(|| format!("cannot build {}", dir.display()))?;
    println!(
        "built {} ({} {}, {} bytes) in {:.1} s",
        built.path.display(),
        built.lang,
        built.world,
        built.size,
        built.seconds
    );
    Ok(())
}

/// Create a handler project `name` in `dir`.
pub(super) fn new(lang: Language, name: &str, dir: &Path) -> Result<()> {
    let created = build::scaffold::new_project(lang, name, dir, &build::default_cache())
        .with_context(|| format!("cannot create {lang} project {name}"))?;
    println!("created {} ({lang}):", created.dir.display());
    for f in &created.files {
        println!("  {}", f.strip_prefix(&created.dir).unwrap_or(f).display());
    }
    println!(
        "next: cd {} && read README.md; `ingesta build` makes the component",
        created.dir.display()
    );
    Ok(())
}

/// Print the SHA-256 of the token on stdin.
pub(super) fn hash_token() -> Result<()> {
    let mut token = String::new();
    std::io::stdin()
        .read_line(&mut token)
        .context("cannot read the token from stdin")?;
    if token.trim().is_empty() {
        anyhow::bail!("no token on stdin; usage: echo -n TOKEN | ingesta hash-token");
    }
    println!("{}", crate::auth::hash_token(&token));
    Ok(())
}
