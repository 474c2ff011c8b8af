//! Statements written with numbered parameters (`$1`, `$2`…) for a driver
//! whose parameters are `?`, bound in the order they appear (MariaDB): each
//! `$n` becomes a `?` bound to the n-th value, so a value used twice is
//! bound twice and every engine's statements take the same list of values
//! (`statements.rs`). Each statement is rewritten once per process.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

/// A statement with `?` parameters, and the index of the value each binds.
type Rewritten = (&'static str, &'static [usize]);

static REWRITTEN: LazyLock<Mutex<HashMap<&'static str, Rewritten>>> = LazyLock::new(Default::default);

/// `sql` with `?` in place of each `$n` outside quoted text, and the
/// 0-based value index of each `?` in order.
pub(crate) fn of(sql: &'static str) -> Rewritten {
    let mut cache = REWRITTEN.lock().unwrap_or_else(|e| e.into_inner());
    *cache.entry(sql).or_insert_with(|| {
        let (text, order) = rewrite(sql);
        (Box::leak(text.into_boxed_str()), Box::leak(order.into_boxed_slice()))
    })
}

fn rewrite(sql: &str) -> (String, Vec<usize>) {
    let (mut text, mut order) = (String::with_capacity(sql.len()), Vec::new());
    let mut chars = sql.char_indices().peekable();
    let mut quoted = false;
    while let Some((at, c)) = chars.next() {
        if c == '\'' {
            quoted = !quoted;
        }
        let digits = sql[at + 1..].bytes().take_while(u8::is_ascii_digit).count();
        if c == '$' && !quoted && digits > 0 {
            let n: usize = sql[at + 1..at + 1 + digits].parse().expect("ascii digits");
            order.push(n - 1);
            text.push('?');
            for _ in 0..digits {
                chars.next();
            }
        } else {
            text.push(c);
        }
    }
    (text, order)
}

#[cfg(test)]
mod tests {
    use super::rewrite;

    #[test]
    fn each_numbered_parameter_is_a_question_mark_bound_to_its_value() {
        let (text, order) =
            rewrite("SELECT $2, JSON_TABLE($1, '$[*]' COLUMNS (x INT PATH '$.a$1')) WHERE a = $12 OR b = $2");
        assert_eq!(text, "SELECT ?, JSON_TABLE(?, '$[*]' COLUMNS (x INT PATH '$.a$1')) WHERE a = ? OR b = ?");
        assert_eq!(order, vec![1, 0, 11, 1]);
    }
}
