//! The module graph has no cycles: no file imports (through `crate::`/`super::` paths) a file
//! that imports it back, directly or around a loop, and no top-level module (`api`, `sfu`,
//! `signaling`, …) depends on one that depends on it. Cycles are where "everything imports
//! everything" starts: the HTTP layer at the top, the SFU and the pure decisions below it.
//!
//! Read from the source text of each crate's `src/` (test modules after `#[cfg(test)]` are left
//! out). Run alone: `cargo test -p roomcast --test module_graph`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module path inside one crate: `["api", "ops"]`; the crate root is `[]`.
type ModPath = Vec<String>;

fn module_of(src: &Path, file: &Path) -> ModPath {
    let rel = file.strip_prefix(src).unwrap();
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    let last = parts.pop().unwrap();
    let stem = last.trim_end_matches(".rs");
    if parts.first().map(String::as_str) == Some("bin") {
        return vec!["bin".into(), stem.into()];
    }
    if !matches!(stem, "mod" | "lib" | "main") {
        parts.push(stem.into());
    }
    parts
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code without comments and test modules, so doc examples and tests draw no arrows.
fn code_of(text: &str) -> String {
    let mut out = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let test_module = lines.peek().is_some_and(|next| next.trim_start().starts_with("mod "));
        if line.trim_start().starts_with("#[cfg(test)]") && test_module {
            break;
        }
        let code = match line.find("//") {
            Some(i) if !line[..i].contains('"') => &line[..i],
            _ => line,
        };
        out.push_str(code);
        out.push('\n');
    }
    out
}

fn ident_at(s: &str) -> Option<&str> {
    let end = s.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(s.len());
    (end > 0).then(|| &s[..end])
}

/// Every path the code names from `crate::…` or `super::…`, expanded (`use crate::{a::b, c}`
/// gives `a::b` and `c`), as absolute module paths (items included; trimmed later).
fn referenced_paths(module: &ModPath, is_mod_file: bool, code: &str) -> Vec<ModPath> {
    let mut found = Vec::new();
    for (start, anchor) in [("crate::", None), ("super::", Some(()))] {
        let mut rest = code;
        while let Some(i) = rest.find(start) {
            // `foo_super::` or `mycrate::` are other names.
            let before = rest[..i].chars().last();
            let after = &rest[i + start.len()..];
            rest = after;
            if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                continue;
            }
            let mut base: ModPath = match anchor {
                None => Vec::new(),
                Some(()) => {
                    // `super` of a file module `a::b` is `a`; of `a/mod.rs` (module `a`) it is the root.
                    let mut m = module.clone();
                    if !is_mod_file || !m.is_empty() {
                        m.pop();
                    }
                    m
                }
            };
            let mut tail = after;
            while let Some(t) = tail.strip_prefix("super::") {
                base.pop();
                tail = t;
            }
            expand(&base, tail, &mut found);
        }
    }
    found
}

/// `tail` follows `crate::`: either `a::b::C` or a `{…}` group.
fn expand(base: &ModPath, tail: &str, found: &mut Vec<ModPath>) {
    let mut path = base.clone();
    let mut t = tail;
    loop {
        if let Some(group) = t.strip_prefix('{') {
            let mut depth = 1;
            let mut item_start = 0;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' | ',' if depth == 1 => {
                        expand(&path, group[item_start..i].trim_start(), found);
                        item_start = i + 1;
                        if c == '}' {
                            return;
                        }
                    }
                    '}' => depth -= 1,
                    _ => {}
                }
            }
            return;
        }
        let Some(id) = ident_at(t) else { break };
        path.push(id.to_owned());
        t = &t[id.len()..];
        match t.strip_prefix("::") {
            Some(more) => t = more,
            None => break,
        }
    }
    found.push(path);
}

struct Graph {
    /// File module → the modules it imports (each the longest known module prefix of a path).
    edges: BTreeMap<ModPath, BTreeSet<ModPath>>,
}

fn graph_of(src: &Path) -> Graph {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let modules: BTreeMap<ModPath, PathBuf> = files.iter().map(|f| (module_of(src, f), f.clone())).collect();
    let mut edges = BTreeMap::new();
    for (module, file) in &modules {
        if module.first().map(String::as_str) == Some("bin") {
            continue; // binaries sit above the library; `crate::` there is the binary itself
        }
        let is_mod_file = file.file_name().is_some_and(|n| n == "mod.rs" || n == "lib.rs" || n == "main.rs");
        let code = code_of(&std::fs::read_to_string(file).unwrap());
        let mut to = BTreeSet::new();
        for mut path in referenced_paths(module, is_mod_file, &code) {
            while !path.is_empty() && !modules.contains_key(&path) {
                path.pop();
            }
            // A module naming its own items or its children's (`pub use`) is no arrow up.
            if !path.is_empty() && &path != module && !path.starts_with(module) {
                to.insert(path);
            }
        }
        edges.insert(module.clone(), to);
    }
    Graph { edges }
}

/// One cycle of `edges` if there is one (depth-first search, colours white/grey/black).
fn find_cycle<N: Ord + Clone>(edges: &BTreeMap<N, BTreeSet<N>>) -> Option<Vec<N>> {
    fn visit<N: Ord + Clone>(n: &N, edges: &BTreeMap<N, BTreeSet<N>>, state: &mut BTreeMap<N, bool>, stack: &mut Vec<N>) -> Option<Vec<N>> {
        match state.get(n) {
            Some(true) => return None,
            Some(false) => {
                let at = stack.iter().position(|x| x == n).unwrap();
                let mut cycle = stack[at..].to_vec();
                cycle.push(n.clone());
                return Some(cycle);
            }
            None => {}
        }
        state.insert(n.clone(), false);
        stack.push(n.clone());
        for m in edges.get(n).into_iter().flatten() {
            if let Some(c) = visit(m, edges, state, stack) {
                return Some(c);
            }
        }
        stack.pop();
        state.insert(n.clone(), true);
        None
    }
    let mut state = BTreeMap::new();
    edges.keys().find_map(|n| visit(n, edges, &mut state, &mut Vec::new()))
}

fn show(cycle: &[ModPath]) -> String {
    cycle.iter().map(|m| if m.is_empty() { "crate".to_owned() } else { m.join("::") }).collect::<Vec<_>>().join(" -> ")
}

fn check_crate(dir: &str) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(dir).join("src");
    let graph = graph_of(&src);
    assert!(graph.edges.len() > 3, "{dir}: the source was read ({} modules)", graph.edges.len());
    if let Some(cycle) = find_cycle(&graph.edges) {
        panic!("{dir}: import cycle between files: {}; move the shared item down into a module both can import", show(&cycle));
    }
    // The same at the top level: `api::rooms -> signaling` counts as `api -> signaling`.
    let mut top: BTreeMap<ModPath, BTreeSet<ModPath>> = BTreeMap::new();
    for (from, tos) in &graph.edges {
        let Some(f) = from.first() else { continue }; // the crate root wires everything: above all
        for to in tos {
            if let Some(t) = to.first().filter(|t| *t != f) {
                top.entry(vec![f.clone()]).or_default().insert(vec![t.clone()]);
            }
        }
    }
    if let Some(cycle) = find_cycle(&top) {
        // Which files make each arrow of the loop, so the fix is obvious.
        let mut why = Vec::new();
        for pair in cycle.windows(2) {
            for (from, tos) in &graph.edges {
                for to in tos.iter().filter(|to| from.starts_with(&pair[0]) && to.starts_with(&pair[1])) {
                    why.push(format!("{} -> {}", show(std::slice::from_ref(from)), show(std::slice::from_ref(to))));
                }
            }
        }
        panic!(
            "{dir}: import cycle between top-level modules: {}; the lower one must not import the higher ({})",
            show(&cycle),
            why.join(", ")
        );
    }
}

#[test]
fn the_gateway_has_no_import_cycles() {
    check_crate("gateway");
}

#[test]
fn the_compositor_has_no_import_cycles() {
    check_crate("compositor");
}

#[test]
fn hls_out_has_no_import_cycles() {
    check_crate("hls-out");
}

/// The checker itself finds a cycle it is shown, and reads grouped and relative imports.
#[test]
fn the_checker_sees_cycles_and_grouped_imports() {
    let m = |s: &str| -> ModPath { s.split("::").filter(|x| !x.is_empty()).map(str::to_owned).collect() };
    let paths = referenced_paths(
        &m("api::ops"),
        false,
        "use crate::{a::b, c::{D, e::F}};\nuse super::error::ApiError;\nlet x = crate::sfu::Command::Stop;",
    );
    for want in ["a::b", "c::D", "c::e::F", "api::error::ApiError", "sfu::Command::Stop"] {
        assert!(paths.contains(&m(want)), "{want} in {paths:?}");
    }
    let in_mod_file = referenced_paths(&m("api"), true, "use super::config::Config;");
    assert_eq!(in_mod_file, vec![m("config::Config")], "super of api/mod.rs is the crate root");
    let mut edges: BTreeMap<u8, BTreeSet<u8>> = BTreeMap::new();
    edges.insert(1, [2].into());
    edges.insert(2, [3].into());
    edges.insert(3, [].into());
    assert_eq!(find_cycle(&edges), None);
    edges.insert(3, [1].into());
    assert_eq!(find_cycle(&edges), Some(vec![1, 2, 3, 1]));
}
