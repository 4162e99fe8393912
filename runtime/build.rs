//! Rebuild when the files `ingesta build` and `ingesta new` embed change:
//! `include_dir!` cannot tell cargo about them on stable Rust.

fn main() {
    for dir in [
        "../wit",
        "../sdk/rust",
        "../sdk/abi",
        "../sdk/go",
        "../sdk/python",
        "src/build/templates",
        "../Cargo.toml",
    ] {
        println!("cargo:rerun-if-changed={dir}");
    }
}
