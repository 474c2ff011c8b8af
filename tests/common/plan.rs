//! Query plans, read from each engine's own format into one list of
//! [`Step`]s, so that a check ("no full scan of `jobs`", "no sort") means
//! the same on every engine. One reader per engine:
//!
//! * SQLite: the `detail` column of `EXPLAIN QUERY PLAN` ([`read_sqlite`]);
//! * PostgreSQL: `EXPLAIN (FORMAT JSON)` ([`read_postgres`]);
//! * MariaDB: `EXPLAIN FORMAT=JSON` ([`read_mariadb`]).

use serde_json::Value;

/// The tables a sweep reads or deletes from (the jobs, their drives, the
/// audit trail and the run records): a statement of a sweep must never read
/// all of one of them.
pub const SWEPT_TABLES: [&str; 4] = ["jobs", "job_drives", "retention_audit", "retention_runs"];

/// Partial indexes of rows few by nature (the runs still running, the held
/// jobs): reading one whole reads those rows, not its table.
pub const INDEXES_OF_FEW_ROWS: [&str; 2] = ["retention_runs_running", "jobs_held"];

/// How a step reaches the rows of a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// Every row, in the table's own order.
    FullScan,
    /// Every entry of an index, from one end (no bound): as costly as a full
    /// scan, in the index's order.
    WholeIndex(String),
    /// A bounded range of an index (a seek), read in the index's order.
    IndexRange(String),
    /// One look-up per row by the primary key (or the row's physical address).
    ByKey,
    /// PostgreSQL's bitmap scan, MariaDB's index merge: the matches of
    /// `indexes` gathered, then the table read in its physical order, so not
    /// in an index's order; `by_key` when those indexes are the primary key.
    Bitmap { indexes: Vec<String>, by_key: bool },
}

/// One step of a plan that matters to the checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Rows of `table` read through `access`.
    Read { table: String, access: Access },
    /// Rows sorted in memory or on disk (SQLite's temporary B-tree).
    Sort,
}

/// A statement's plan: its steps and the engine's own text, for messages.
#[derive(Debug, Clone)]
pub struct Plan {
    pub steps: Vec<Step>,
    pub text: String,
}

impl Plan {
    /// Whether some step reads index `index` (a range, all of it, or into a bitmap).
    pub fn uses_index(&self, index: &str) -> bool {
        self.steps.iter().any(|step| match step {
            Step::Read { access: Access::IndexRange(name) | Access::WholeIndex(name), .. } => name == index,
            Step::Read { access: Access::Bitmap { indexes, .. }, .. } => indexes.iter().any(|name| name == index),
            _ => false,
        })
    }

    /// Whether some step looks rows of `table` up by its primary key.
    pub fn reads_by_key(&self, table: &str) -> bool {
        self.reads(table).any(|access| matches!(access, Access::ByKey | Access::Bitmap { by_key: true, .. }))
    }

    /// The ways this plan reads `table`.
    pub fn reads<'a>(&'a self, table: &'a str) -> impl Iterator<Item = &'a Access> {
        self.steps.iter().filter_map(move |step| match step {
            Step::Read { table: read, access } if read == table => Some(access),
            _ => None,
        })
    }

    /// The steps that read the whole of one of `tables`: a full scan, or a
    /// walk of a whole index (but one of [`INDEXES_OF_FEW_ROWS`]).
    pub fn full_scans(&self, tables: &[&str]) -> Vec<&Step> {
        self.steps
            .iter()
            .filter(|step| match step {
                Step::Read { table, access: Access::FullScan } => tables.contains(&table.as_str()),
                Step::Read { table, access: Access::WholeIndex(index) } => {
                    tables.contains(&table.as_str()) && !INDEXES_OF_FEW_ROWS.contains(&index.as_str())
                }
                _ => false,
            })
            .collect()
    }

    pub fn sorts(&self) -> bool {
        self.steps.contains(&Step::Sort)
    }

    pub fn bitmap_scans(&self) -> bool {
        self.steps.iter().any(|step| matches!(step, Step::Read { access: Access::Bitmap { .. }, .. }))
    }

    /// Fails unless no step reads the whole of a [`SWEPT_TABLES`] table.
    #[track_caller]
    pub fn assert_no_full_scan(&self, what: &str) {
        let scans = self.full_scans(&SWEPT_TABLES);
        assert!(scans.is_empty(), "{what} reads a whole table ({scans:?}):\n{}", self.text);
    }

    /// Fails unless the plan walks its indexes in their order: no full scan,
    /// no sort and no bitmap scan (which reads the table in its own order).
    #[track_caller]
    pub fn assert_in_index_order(&self, what: &str) {
        let scans = self.full_scans(&SWEPT_TABLES);
        let mut faults = Vec::new();
        if !scans.is_empty() {
            faults.push(format!("reads a whole table ({scans:?})"));
        }
        if self.sorts() {
            faults.push("sorts".to_owned());
        }
        if self.bitmap_scans() {
            faults.push("reads through a bitmap".to_owned());
        }
        assert!(faults.is_empty(), "{what} {}:\n{}", faults.join(", "), self.text);
    }

    #[track_caller]
    pub fn assert_uses(&self, index: &str, what: &str) {
        assert!(self.uses_index(index), "{what} does not use {index}:\n{}", self.text);
    }
}

/// SQLite: a plan from the `detail` lines of `EXPLAIN QUERY PLAN` of `sql`.
/// A line names a table by its alias when the statement gives one
/// (`retention_audit AS a`), so the aliases are read from `sql`.
///
/// * `SCAN t` is a full scan; `SCAN t USING [COVERING] INDEX i` walks all of `i`;
/// * `SEARCH t USING [COVERING] INDEX i (…)` is a range of `i`;
/// * `SEARCH t USING [INTEGER] PRIMARY KEY (…)` looks rows up by key;
/// * `… AUTOMATIC … INDEX` is an index SQLite builds from a full scan;
/// * `USE TEMP B-TREE FOR …` is a sort.
pub fn read_sqlite(details: &[String], sql: &str) -> Plan {
    let aliases = aliases(sql);
    let table_of = |name: &str| table_of(&aliases, name);
    let steps = details
        .iter()
        .filter_map(|detail| {
            if detail.starts_with("USE TEMP B-TREE") {
                return Some(Step::Sort);
            }
            let (full, rest) = if let Some(rest) = detail.strip_prefix("SCAN ") {
                (true, rest)
            } else {
                (false, detail.strip_prefix("SEARCH ")?)
            };
            let mut words = rest.split_whitespace();
            let table = table_of(words.next()?);
            let using: Vec<&str> = words.by_ref().skip_while(|word| *word != "USING").skip(1).collect();
            let index_after = |keyword: &str| {
                using.iter().position(|word| *word == keyword).and_then(|at| using.get(at + 1)).map(|i| i.to_string())
            };
            let access = if using.contains(&"AUTOMATIC") {
                Access::FullScan
            } else if using.contains(&"PRIMARY") || using.first() == Some(&"ROWID") {
                if full { Access::FullScan } else { Access::ByKey }
            } else if let Some(index) = index_after("INDEX") {
                if full { Access::WholeIndex(index) } else { Access::IndexRange(index) }
            } else {
                Access::FullScan
            };
            Some(Step::Read { table, access })
        })
        .collect();
    Plan { steps, text: details.join("\n") }
}

/// The aliases `sql` gives the [`SWEPT_TABLES`], as `(alias, table)`: each
/// `<table> AS <alias>` (the form the store's statements use).
fn aliases(sql: &str) -> Vec<(String, String)> {
    let words: Vec<&str> =
        sql.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).filter(|w| !w.is_empty()).collect();
    words
        .windows(3)
        .filter(|w| w[1].eq_ignore_ascii_case("AS") && SWEPT_TABLES.contains(&w[0]))
        .map(|w| (w[2].to_owned(), w[0].to_owned()))
        .collect()
}

/// The table `name` stands for among `aliases` (itself if none).
fn table_of(aliases: &[(String, String)], name: &str) -> String {
    aliases.iter().find(|(alias, _)| alias == name).map_or(name, |(_, table)| table).to_owned()
}

/// MariaDB: a plan from the output of `EXPLAIN FORMAT=JSON` of `sql`, every
/// `table` object of it (subqueries, derived tables and unions included),
/// named by its alias when `sql` gives one (`jobs AS j`).
///
/// * `access_type` `ALL` is a full scan; `index` walks all of `key`;
/// * `range`, `ref`, `eq_ref`, `const` (and the subquery look-ups) seek
///   `key`: a range of it, a look-up by key on `PRIMARY`; but a `range`
///   bounded by nothing but `<column> IS NOT NULL` (what MariaDB adds to
///   the subquery it materializes for a join on that column) reads every
///   entry of `key` but the NULLs, so all of it;
/// * `index_merge` gathers the matches of several indexes (as a bitmap);
/// * a `filesort` anywhere is a sort.
///
/// Derived tables (`<derived2>`, `<union1,2>`) are the engine's own rows
/// and not read here; their parts are.
pub fn read_mariadb(explained: &Value, sql: &str) -> Plan {
    let mut steps = Vec::new();
    mariadb_steps(explained, &aliases(sql), &mut steps);
    Plan { steps, text: serde_json::to_string_pretty(explained).expect("JSON") }
}

fn mariadb_steps(node: &Value, aliases: &[(String, String)], steps: &mut Vec<Step>) {
    match node {
        Value::Object(fields) => {
            if fields.contains_key("filesort") {
                steps.push(Step::Sort);
            }
            if let (Some(name), Some(access)) = (node["table_name"].as_str(), node["access_type"].as_str())
                && !name.starts_with('<')
            {
                let key = node["key"].as_str().map(str::to_owned);
                let access = match (access, key) {
                    ("index_merge", _) => {
                        let mut indexes = Vec::new();
                        mariadb_keys(&node["index_merge"], &mut indexes);
                        let by_key = indexes.iter().all(|index| index == "PRIMARY");
                        Access::Bitmap { indexes, by_key }
                    }
                    ("index", Some(key)) => Access::WholeIndex(key),
                    ("range", Some(key)) if mariadb_not_null_only(node, name) => Access::WholeIndex(key),
                    ("ALL", _) | (_, None) => Access::FullScan,
                    (_, Some(key)) if key == "PRIMARY" => Access::ByKey,
                    (_, Some(key)) => Access::IndexRange(key),
                };
                steps.push(Step::Read { table: table_of(aliases, name), access });
            }
            fields.values().for_each(|value| mariadb_steps(value, aliases, steps));
        }
        Value::Array(items) => items.iter().for_each(|item| mariadb_steps(item, aliases, steps)),
        _ => {}
    }
}

/// Whether the read `node` of table `name` has one key part and no
/// condition but that it is not NULL.
fn mariadb_not_null_only(node: &Value, name: &str) -> bool {
    match node["used_key_parts"].as_array().map(Vec::as_slice) {
        Some([part]) => {
            let column = part.as_str().unwrap_or_default();
            node["attached_condition"].as_str() == Some(format!("{name}.{column} is not null").as_str())
        }
        _ => false,
    }
}

/// The `key`s under an `index_merge` object.
fn mariadb_keys(node: &Value, keys: &mut Vec<String>) {
    match node {
        Value::Object(fields) => {
            if let Some(key) = node["key"].as_str() {
                keys.push(key.to_owned());
            }
            fields.values().for_each(|value| mariadb_keys(value, keys));
        }
        Value::Array(items) => items.iter().for_each(|item| mariadb_keys(item, keys)),
        _ => {}
    }
}

/// PostgreSQL: a plan from the output of `EXPLAIN (FORMAT JSON)`, every node
/// of the tree (init plans and subplans included).
///
/// * `Seq Scan` is a full scan;
/// * `Index Scan` / `Index Only Scan` is a range of its index with an
///   `Index Cond`, all of it without one; on the primary key (`<table>_pkey`,
///   the name PostgreSQL gives it) a look-up by key;
/// * `Tid Scan` looks rows up by their physical address;
/// * `Bitmap Heap Scan` is a bitmap scan of the indexes of its `Bitmap Index Scan`s;
/// * `Sort` and `Incremental Sort` are sorts (a `Merge Append` is not).
pub fn read_postgres(explained: &Value) -> Plan {
    let mut steps = Vec::new();
    let roots = explained.as_array().unwrap_or_else(|| panic!("EXPLAIN (FORMAT JSON) gives an array: {explained}"));
    for root in roots {
        postgres_steps(&root["Plan"], &mut steps);
    }
    Plan { steps, text: serde_json::to_string_pretty(explained).expect("JSON") }
}

fn postgres_steps(node: &Value, steps: &mut Vec<Step>) {
    let node_type = node["Node Type"].as_str().unwrap_or_else(|| panic!("a plan node without a type: {node}"));
    let table = node["Relation Name"].as_str().map(str::to_owned);
    let index = node["Index Name"].as_str().map(str::to_owned);
    let step = match (node_type, table, index) {
        ("Sort" | "Incremental Sort", _, _) => Some(Step::Sort),
        ("Seq Scan", Some(table), _) => Some(Step::Read { table, access: Access::FullScan }),
        ("Tid Scan" | "Tid Range Scan", Some(table), _) => Some(Step::Read { table, access: Access::ByKey }),
        ("Bitmap Heap Scan", Some(table), _) => {
            let mut indexes = Vec::new();
            bitmap_indexes(node, &mut indexes);
            let by_key = indexes.iter().all(|index| *index == postgres_primary_key(&table));
            Some(Step::Read { table, access: Access::Bitmap { indexes, by_key } })
        }
        ("Index Scan" | "Index Only Scan", Some(table), Some(index)) => {
            let access = if node.get("Index Cond").is_none() {
                Access::WholeIndex(index)
            } else if index == postgres_primary_key(&table) {
                Access::ByKey
            } else {
                Access::IndexRange(index)
            };
            Some(Step::Read { table, access })
        }
        _ => None,
    };
    steps.extend(step);
    for child in node["Plans"].as_array().into_iter().flatten() {
        postgres_steps(child, steps);
    }
}

/// The name PostgreSQL gives the primary key of `table`.
fn postgres_primary_key(table: &str) -> String {
    format!("{table}_pkey")
}

/// The indexes of the `Bitmap Index Scan`s under `node`.
fn bitmap_indexes(node: &Value, indexes: &mut Vec<String>) {
    for child in node["Plans"].as_array().into_iter().flatten() {
        if let Some(index) = child["Index Name"].as_str() {
            indexes.push(index.to_owned());
        }
        bitmap_indexes(child, indexes);
    }
}

/// The plan of `sql` (parameters written in) on `env`'s engine.
#[track_caller]
pub fn explain(env: &super::TestEnv, sql: &str) -> Plan {
    match env.engine {
        super::Engine::Sqlite => {
            let details: Vec<String> = env
                .rows(&format!("EXPLAIN QUERY PLAN {sql}"))
                .into_iter()
                .map(|row| row.last().and_then(Value::as_str).expect("a detail column").to_owned())
                .collect();
            read_sqlite(&details, sql)
        }
        super::Engine::Postgres => read_postgres(&explain_json(env.rows(&format!("EXPLAIN (FORMAT JSON) {sql}")))),
        super::Engine::MariaDb => {
            let rows = env.rows(&format!("EXPLAIN FORMAT=JSON {sql}"));
            let text = rows.first().and_then(|row| row.first()).and_then(Value::as_str).expect("EXPLAIN's JSON");
            read_mariadb(&serde_json::from_str(text).expect("EXPLAIN FORMAT=JSON gives JSON"), sql)
        }
    }
}

/// The one JSON cell of PostgreSQL's `EXPLAIN (FORMAT JSON)`.
#[track_caller]
pub fn explain_json(rows: Vec<Vec<Value>>) -> Value {
    rows.into_iter().next().and_then(|row| row.into_iter().next()).expect("EXPLAIN (FORMAT JSON) gives one row")
}
