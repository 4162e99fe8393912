//! `ingesta new`: a buildable handler project from the embedded templates,
//! wired to the SDK this binary carries (unpacked under the cache).

use std::path::{Path, PathBuf};
use std::process::Command;

use include_dir::{Dir, DirEntry};

use super::{BuildError, Language, embedded, go, on_path, run};

/// What `ingesta new` created.
#[derive(Debug)]
pub struct Created {
    /// The new project directory, `parent/name`.
    pub dir: PathBuf,
    /// Every file written, as paths under `dir`, in template order.
    pub files: Vec<PathBuf>,
}

/// Creates project `name` in `parent/name` from the `lang` template.
pub fn new_project(
    lang: Language,
    name: &str,
    parent: &Path,
    cache: &Path,
) -> Result<Created, BuildError> {
    let dir = parent.join(name);
    let project_err = |message: String| BuildError::Project {
        dir: dir.clone(),
        message,
    };
    if !valid_name(name) {
        return Err(project_err(format!(
            "{name:?} is not a usable project name: use lower-case letters, digits and `-`, \
             starting with a letter (e.g. cart-alerts)"
        )));
    }
    if dir.exists() {
        return Err(project_err(
            "already exists; pick another name or remove it".into(),
        ));
    }
    let template = embedded::TEMPLATES
        .get_dir(lang.to_string())
        .ok_or_else(|| BuildError::Embedded(format!("no {lang} template")))?;
    let root = embedded::sdk_root(cache)?;
    let vars = [
        ("{{name}}", name.to_owned()),
        ("{{module}}", name.replace('-', "_")),
        ("{{sdk_rust}}", path_text(&root.join("sdk/rust"))),
        ("{{sdk_go}}", path_text(&root.join("sdk/go"))),
        ("{{sdk_python}}", path_text(&root.join("sdk/python"))),
    ];
    let mut files = Vec::new();
    write_tree(template, template.path(), &dir, &vars, &mut files)?;
    if lang == Language::Go {
        // Records the SDK's own requirements (and their sums) in go.sum.
        let go_cmd = on_path("go").ok_or_else(|| BuildError::MissingTool {
            tool: "go",
            lang,
            advice: "install Go 1.26 or newer and put `go` on PATH".into(),
        })?;
        go::ensure_proxy(cache);
        let mut cmd = Command::new(go_cmd);
        cmd.current_dir(&dir).args(["mod", "tidy"]);
        for (k, v) in go::go_env(cache) {
            cmd.env(k, v);
        }
        run(
            cmd,
            "the project was created; fix the go setup and run `go mod tidy` in it",
        )?;
    }
    Ok(Created { dir, files })
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-')
}

fn path_text(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

fn fill(text: &str, vars: &[(&str, String)]) -> String {
    vars.iter()
        .fold(text.to_owned(), |t, (k, v)| t.replace(k, v))
}

fn write_tree(
    dir: &Dir<'_>,
    base: &Path,
    out: &Path,
    vars: &[(&str, String)],
    files: &mut Vec<PathBuf>,
) -> Result<(), BuildError> {
    for entry in dir.entries() {
        match entry {
            DirEntry::Dir(d) => write_tree(d, base, out, vars, files)?,
            DirEntry::File(f) => {
                let rel = f.path().strip_prefix(base).unwrap_or(f.path());
                // Templates keep files that tools would pick up in the
                // repository (`Cargo.toml`, `go.mod`) under a `.tmpl` name.
                let rel = fill(&rel.to_string_lossy(), vars);
                let rel = rel.strip_suffix(".tmpl").unwrap_or(&rel);
                let target = out.join(rel);
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| BuildError::io(parent, e))?;
                }
                let contents = match f.contents_utf8() {
                    Some(text) => fill(text, vars).into_bytes(),
                    None => f.contents().to_vec(),
                };
                std::fs::write(&target, contents).map_err(|e| BuildError::io(&target, e))?;
                files.push(target);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(valid_name("cart-alerts"));
        assert!(valid_name("stats2"));
        for bad in ["", "Cart", "2x", "a_b", "a-", "a b", "../x"] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn every_language_has_a_template_with_a_readme() {
        for lang in [Language::Rust, Language::Go, Language::Python] {
            let t = embedded::TEMPLATES
                .get_dir(lang.to_string())
                .unwrap_or_else(|| panic!("{lang} template"));
            assert!(
                t.files().any(|f| f.path().ends_with("README.md")),
                "{lang} template has a README"
            );
        }
    }
}
