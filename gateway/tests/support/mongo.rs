//! The MongoDB server the tests use: SecantusDB, started by tests/run.sh, which sets
//! ROOMCAST_TEST_MONGODB_URI. Off CI the MongoDB tests skip without it; on CI they fail.
#![allow(dead_code)]

use roomcast::store::Location;

pub const MONGODB_URI_VAR: &str = "ROOMCAST_TEST_MONGODB_URI";

/// The MongoDB server to test against, on a database of its own; `None` (skip) only off CI.
pub fn mongodb_location() -> Option<Location> {
    let uri = std::env::var(MONGODB_URI_VAR).ok().filter(|u| !u.trim().is_empty());
    let on_ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
    match uri {
        Some(uri) => Some(Location::Mongo(with_database(&uri, &format!("roomcast_test_{:016x}", rand_u64())))),
        None if on_ci => {
            panic!("{MONGODB_URI_VAR} is not set, and CI is: run the tests through tests/run.sh, which starts SecantusDB and sets it")
        }
        None => {
            eprintln!("skipped: the MongoDB half needs {MONGODB_URI_VAR}=mongodb://127.0.0.1:PORT (tests/run.sh sets it)");
            None
        }
    }
}

/// `mongodb://h:p` or `mongodb://h:p/?opts` → `mongodb://h:p/DB[?opts]`.
pub fn with_database(uri: &str, db: &str) -> String {
    let (base, query) = uri.split_once('?').map_or((uri, None), |(b, q)| (b, Some(q)));
    let (scheme, rest) = base.split_once("://").expect("a mongodb:// URI");
    let authority = rest.split('/').next().unwrap_or(rest);
    match query {
        Some(q) => format!("{scheme}://{authority}/{db}?{q}"),
        None => format!("{scheme}://{authority}/{db}"),
    }
}

pub fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos());
    h.finish()
}
