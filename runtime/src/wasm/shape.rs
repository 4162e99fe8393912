//! Structural limits of an uploaded component, checked with wasmparser
//! before anything compiles it.
//!
//! wasmtime cannot cancel a compile, and Cranelift's time and memory grow
//! with the size of each function more than with the size of the module:
//! one function of millions of instructions, or hundreds of thousands of
//! tiny ones, costs far more to compile than its bytes suggest. So the
//! shape is bounded before compiling — functions, their size and locals,
//! and the core modules, memories and tables the instance pool has room
//! for — with limits well above what the SDKs' modules need (CPython
//! built by componentize-py included: see the unit test's figures).

use wasmparser::{Parser, Payload};

/// The limits; each is named in the refusal that hits it.
#[derive(Debug, Clone, Copy)]
pub(super) struct ShapeLimits {
    /// Functions with a body, over all core modules.
    pub functions: usize,
    /// Bytes of one function body.
    pub function_bytes: usize,
    /// Locals of one function.
    pub locals: u64,
    /// Core modules nested in the component.
    pub core_modules: usize,
    /// Memories defined, over all core modules.
    pub memories: usize,
    /// Tables defined, over all core modules.
    pub tables: usize,
}

/// The limits every upload is held to.
pub(super) const LIMITS: ShapeLimits = ShapeLimits {
    functions: 200_000,
    function_bytes: 1 << 20,
    locals: 10_000,
    // The instance pool's per-component maxima (see `engine`).
    core_modules: 64,
    memories: 4,
    tables: 16,
};

/// What a component holds, as far as the limits care.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Shape {
    pub functions: usize,
    pub largest_function_bytes: usize,
    pub most_locals: u64,
    pub core_modules: usize,
    pub memories: usize,
    pub tables: usize,
}

/// The shape of `bytes`, reading only as far as the first limit it passes
/// (`Err` names that limit); a parse error is left to the compiler, whose
/// message is better.
pub(super) fn check(bytes: &[u8], limits: &ShapeLimits) -> Result<Shape, String> {
    let mut shape = Shape::default();
    for payload in Parser::new(0).parse_all(bytes) {
        let Ok(payload) = payload else {
            break;
        };
        match payload {
            Payload::ModuleSection { .. } => shape.core_modules += 1,
            Payload::MemorySection(s) => shape.memories += s.count() as usize,
            Payload::TableSection(s) => shape.tables += s.count() as usize,
            Payload::CodeSectionEntry(body) => {
                shape.functions += 1;
                let size = body.range().len();
                shape.largest_function_bytes = shape.largest_function_bytes.max(size);
                let locals: u64 = body
                    .get_locals_reader()
                    .into_iter()
                    .flat_map(|r| r.into_iter())
                    .filter_map(Result::ok)
                    .map(|(count, _)| u64::from(count))
                    .sum();
                shape.most_locals = shape.most_locals.max(locals);
            }
            _ => {}
        }
        over(&shape, limits)?;
    }
    Ok(shape)
}

/// The first limit `shape` is over, as the refusal's text.
fn over(shape: &Shape, l: &ShapeLimits) -> Result<(), String> {
    let checks = [
        (shape.functions, l.functions, "functions"),
        (
            shape.largest_function_bytes,
            l.function_bytes,
            "bytes in one function",
        ),
        (
            usize::try_from(shape.most_locals).unwrap_or(usize::MAX),
            usize::try_from(l.locals).unwrap_or(usize::MAX),
            "locals in one function",
        ),
        (shape.core_modules, l.core_modules, "core modules"),
        (shape.memories, l.memories, "memories"),
        (shape.tables, l.tables, "tables"),
    ];
    for (have, max, what) in checks {
        if have > max {
            return Err(format!(
                "it has more than {max} {what} ({have} so far), which is more than ingesta compiles; split the work or simplify the module"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A core module with `functions` functions, each with `locals` locals
    /// and a body padded to about `body_bytes`.
    fn module(functions: usize, locals: u32, body_bytes: usize) -> Vec<u8> {
        let body = format!(
            "(local {}) {}",
            "i32 ".repeat(locals as usize),
            "(drop (i32.const 0)) ".repeat(body_bytes / 3)
        );
        let funcs: String = (0..functions).map(|_| format!("(func {body})")).collect();
        wat::parse_str(format!("(module (memory 1) (table 1 funcref) {funcs})")).unwrap()
    }

    #[test]
    fn each_limit_is_named_when_passed() {
        let small = ShapeLimits {
            functions: 10,
            function_bytes: 1000,
            locals: 100,
            core_modules: 1,
            memories: 1,
            tables: 1,
        };
        let shape = check(&module(10, 100, 900), &small).unwrap();
        assert_eq!(shape.functions, 10);
        assert_eq!(shape.most_locals, 100);
        assert_eq!((shape.memories, shape.tables), (1, 1));
        for (bytes, needle) in [
            (module(11, 1, 10), "more than 10 functions"),
            (module(1, 1, 3000), "more than 1000 bytes in one function"),
            (module(1, 101, 10), "more than 100 locals in one function"),
        ] {
            let e = check(&bytes, &small).unwrap_err();
            assert!(e.contains(needle), "{e}");
        }
    }
}
