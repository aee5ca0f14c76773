//! The layering of docs/ARCHITECTURE.md, read from the source: which
//! top-level module of `src/` (and of `cli/src/`) names which other, with
//! no cycle, and routes → service → realtime → db one way only.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

type Graph = BTreeMap<String, BTreeSet<String>>;

/// The code of a file without comments and without its unit-test module.
fn code_of(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => &text[..at],
        None => text,
    };
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The modules named in `code` as `crate::<module>`, also inside
/// `use crate::{a, b::c}` groups.
fn named_modules(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // The first name of each item at depth 0 of the braces.
            let mut depth = 0;
            let mut item_starts = vec![0];
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_starts.push(i + 1),
                    _ => {}
                }
            }
            for start in item_starts {
                let name = ident(group[start..].trim_start());
                if !name.is_empty() && name != "self" {
                    found.insert(name);
                }
            }
        } else {
            let name = ident(rest);
            if !name.is_empty() {
                found.insert(name);
            }
        }
    }
    found
}

/// Top-level module → the top-level modules its files name.
fn graph(root: &Path) -> Graph {
    let mut graph = Graph::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let relative = path.strip_prefix(root).unwrap();
            let first = relative.components().next().unwrap();
            let module = first.as_os_str().to_str().unwrap().trim_end_matches(".rs");
            if matches!(module, "lib" | "main") {
                continue;
            }
            let code = code_of(&std::fs::read_to_string(&path).unwrap());
            let named = graph.entry(module.to_owned()).or_default();
            named.extend(named_modules(&code).into_iter().filter(|m| m != module));
        }
    }
    graph
}

/// A cycle through `from`, as the path of modules, if there is one.
fn cycle_from(graph: &Graph, from: &str) -> Option<Vec<String>> {
    let mut stack = vec![vec![from.to_owned()]];
    let mut seen = BTreeSet::new();
    while let Some(path) = stack.pop() {
        let last = path.last().unwrap();
        for next in graph.get(last).into_iter().flatten() {
            if next == from {
                let mut cycle = path.clone();
                cycle.push(next.clone());
                return Some(cycle);
            }
            if seen.insert(next.clone()) {
                let mut longer = path.clone();
                longer.push(next.clone());
                stack.push(longer);
            }
        }
    }
    None
}

fn assert_no_cycle(graph: &Graph) {
    for module in graph.keys() {
        assert_eq!(
            cycle_from(graph, module),
            None,
            "import cycle in {graph:#?}"
        );
    }
}

#[test]
fn the_server_modules_import_one_way_with_no_cycle() {
    let graph = graph(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    assert!(graph["service"].contains("realtime"), "{graph:#?}");
    assert_no_cycle(&graph);
    for (lower, upper) in [
        ("service", "routes"),
        ("realtime", "service"),
        ("realtime", "routes"),
        ("db", "realtime"),
        ("db", "service"),
        ("db", "routes"),
        ("auth", "service"),
        ("auth", "routes"),
        ("domain", "db"),
    ] {
        assert!(
            !graph[lower].contains(upper),
            "{lower} imports {upper}, a layer above it"
        );
    }
    for (module, names) in &graph {
        assert!(
            module == "testing" || !names.contains("startup"),
            "{module} imports startup, the composition root"
        );
    }
}

#[test]
fn the_cli_modules_have_no_cycle() {
    let graph = graph(&Path::new(env!("CARGO_MANIFEST_DIR")).join("cli/src"));
    assert!(graph["commands"].contains("config"), "{graph:#?}");
    assert_no_cycle(&graph);
}

#[test]
fn a_cycle_is_found() {
    let graph: Graph = [("a", "b"), ("b", "c"), ("c", "a"), ("d", "a")]
        .into_iter()
        .map(|(m, n)| (m.to_owned(), BTreeSet::from([n.to_owned()])))
        .collect();
    assert_eq!(
        cycle_from(&graph, "a"),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
    assert_eq!(cycle_from(&graph, "d"), None);
    assert_eq!(
        named_modules(
            "use crate::{config::Config, db::{self, Db}, error};\nlet x = crate::auth::session::X;"
        ),
        BTreeSet::from(["auth".into(), "config".into(), "db".into(), "error".into()])
    );
}
