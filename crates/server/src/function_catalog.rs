//! Northstar's functions and reports in `pg_catalog`, so that `psql \df+`, pgjdbc's
//! `getFunctions` and BI tools list them with their documentation.
//!
//! datafusion-pg-catalog's `pg_proc` and `pg_description` are static exports of PostgreSQL's own
//! rows. This module appends one `pg_proc` row and one `pg_description` row per Northstar
//! function and report (in the `public` schema, as user functions are in PostgreSQL), wraps the
//! crate's `pg_catalog` schema so that those two tables answer with the appended rows, and adds
//! the catalog functions psql calls on them: `pg_get_function_result`,
//! `pg_get_function_arguments`, `pg_get_function_identity_arguments` and a real
//! `obj_description`. For PostgreSQL's own functions the text is built from their `pg_proc` row
//! and `pg_type`, as PostgreSQL does.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float32Array, Int16Array, Int32Array, Int32Builder, ListBuilder,
    RecordBatch, StringArray, StringBuilder,
};
use datafusion::arrow::compute::{cast, concat_batches};
use datafusion::arrow::datatypes::{DataType, Field, Int32Type, Int64Type, IntervalUnit, Schema, SchemaRef, TimeUnit};
use datafusion::catalog::{MemTable, SchemaProvider, TableProvider};
use datafusion::common::{exec_err, DataFusionError, Result as DfResult};
use datafusion::logical_expr::function::WindowUDFFieldArgs;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature, Volatility,
};
use datafusion::prelude::SessionContext;
use datafusion_pg_catalog::pg_catalog::{ArrowTable, PgCatalogStaticTables};

use crate::catalog_presets::batch_of;
use crate::relations::{CatalogRelations, Relations};

/// The first oid of Northstar's functions: above PostgreSQL's own (< 16384) and the oids
/// datafusion-pg-catalog hands out to tables (counting up from 16384).
const FIRST_FUNCTION_OID: i32 = 900_000;
/// `pg_namespace.oid` of `public` in PostgreSQL: used if datafusion-pg-catalog lists no `public`.
const PUBLIC_NAMESPACE: i32 = 2200;
/// `pg_class.oid` of `pg_proc`: the `classoid` of a function's `pg_description` row.
const PG_PROC_CLASS: i32 = 1255;
/// `pg_language.oid` of `internal`: the functions are built into the server.
const INTERNAL_LANGUAGE: i32 = 12;
/// `pg_type.oid` of `record`, the row type of a set-returning function's rows.
const RECORD_TYPE: i32 = 2249;
/// `pg_authid.oid` of the bootstrap superuser, owner of built-in objects.
const BOOTSTRAP_OWNER: i32 = 10;

/// What kind of routine a function is (`pg_proc.prokind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RoutineKind {
    Aggregate,
    Window,
    Scalar,
    /// A report: a table function returning a set of rows.
    Table,
}

/// One Northstar function or report as the catalog shows it.
#[derive(Debug, Clone)]
struct CatalogFunction {
    oid: i32,
    /// `pg_namespace.oid` of `public`.
    namespace: i32,
    name: String,
    kind: RoutineKind,
    /// PostgreSQL's name of the result type (`integer`, `boolean[]`, `SETOF record`).
    result: String,
    /// `pg_type.oid` of the result (`prorettype`).
    result_type_oid: i32,
    /// The arguments as the documentation's syntax gives them (names; the functions take
    /// several types per argument, which one PostgreSQL type could not say).
    arguments: String,
    description: String,
    volatility: Volatility,
}

/// Argument lists a function's `return_type` is asked with, in order, until one is accepted:
/// the result types of Northstar's functions do not depend on which of their accepted argument
/// types is given, so any accepted list names the result.
fn probe_argument_types() -> Vec<Vec<DataType>> {
    let time = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    let window = DataType::Interval(IntervalUnit::MonthDayNano);
    vec![
        vec![window.clone(), time.clone(), DataType::Boolean, DataType::Boolean],
        vec![DataType::Utf8, time.clone(), DataType::Boolean, DataType::Boolean],
        vec![time.clone(), window],
        vec![DataType::Boolean, DataType::Boolean],
        vec![DataType::Utf8, DataType::Utf8],
        vec![time],
    ]
}

fn first_accepted(mut return_type: impl FnMut(&[DataType]) -> DfResult<DataType>) -> Option<DataType> {
    probe_argument_types().iter().find_map(|args| return_type(args).ok())
}

/// Every Northstar function and report, with oids in a fixed order (functions by kind as the
/// functions crate lists them, then reports as the reports crate does).
fn northstar_functions(namespace: i32) -> Vec<CatalogFunction> {
    let mut out = Vec::new();
    let mut push = |name: &str, kind, result: Option<DataType>, doc: Option<&Documentation>, volatility| {
        let (result, result_type_oid) = match (kind, result) {
            (RoutineKind::Table, _) => ("SETOF record".to_string(), RECORD_TYPE),
            (_, Some(data_type)) => pg_type_of(&data_type),
            (_, None) => ("unknown".to_string(), 705),
        };
        let (arguments, description) = match doc {
            Some(doc) => (syntax_arguments(&doc.syntax_example), doc.description.clone()),
            None => (String::new(), String::new()),
        };
        out.push(CatalogFunction {
            oid: FIRST_FUNCTION_OID + out.len() as i32,
            namespace,
            name: name.to_string(),
            kind,
            result,
            result_type_oid,
            arguments,
            description,
            volatility,
        });
    };
    for f in northstar_functions::aggregate_functions() {
        let result = first_accepted(|args| f.return_type(args));
        push(f.name(), RoutineKind::Aggregate, result, f.documentation(), f.signature().volatility);
    }
    for f in northstar_functions::window_functions() {
        let result = first_accepted(|args| {
            let fields: Vec<_> = args.iter().map(|t| Arc::new(Field::new("a", t.clone(), true))).collect();
            Ok(f.field(WindowUDFFieldArgs::new(&fields, f.name()))?.data_type().clone())
        });
        push(f.name(), RoutineKind::Window, result, f.documentation(), f.signature().volatility);
    }
    for f in northstar_functions::scalar_functions() {
        let result = first_accepted(|args| f.return_type(args));
        push(f.name(), RoutineKind::Scalar, result, f.documentation(), f.signature().volatility);
    }
    for (name, doc) in northstar_reports::documentation::report_documentation() {
        push(name, RoutineKind::Table, None, Some(doc), Volatility::Stable);
    }
    out
}

/// `a, b[, c]` from the documented syntax `name(a, b[, c])`.
fn syntax_arguments(syntax: &str) -> String {
    match (syntax.find('('), syntax.rfind(')')) {
        (Some(open), Some(close)) if open < close => syntax[open + 1..close].trim().to_string(),
        _ => String::new(),
    }
}

/// PostgreSQL's display name and `pg_type.oid` of the type arrow-pg sends for `data_type`.
fn pg_type_of(data_type: &DataType) -> (String, i32) {
    match arrow_pg::datatypes::into_pg_type(data_type) {
        Ok(t) => (display_type_name(t.name()), t.oid() as i32),
        Err(_) => (data_type.to_string(), 705),
    }
}

/// PostgreSQL's display names for the internal ones pg_type uses (`int8` → `bigint`,
/// `_int4` → `integer[]`), as `format_type` prints them.
pub fn display_type_name(internal: &str) -> String {
    if let Some(element) = internal.strip_prefix('_') {
        return format!("{}[]", display_type_name(element));
    }
    match internal {
        "int2" => "smallint",
        "int4" => "integer",
        "int8" => "bigint",
        "float4" => "real",
        "float8" => "double precision",
        "bool" => "boolean",
        "varchar" => "character varying",
        "bpchar" => "character",
        "timestamptz" => "timestamp with time zone",
        "timestamp" => "timestamp without time zone",
        "timetz" => "time with time zone",
        "time" => "time without time zone",
        other => other,
    }
    .to_string()
}

/// The texts the catalog functions return, by function oid.
#[derive(Debug, Default)]
struct FunctionTexts {
    result: HashMap<i64, String>,
    arguments: HashMap<i64, String>,
    identity_arguments: HashMap<i64, String>,
}

/// Appends Northstar's functions to `pg_proc` and `pg_description` of `ctx`'s `pg_catalog`
/// (set up by datafusion-pg-catalog before) and registers the catalog functions that read them.
/// The rows come from datafusion-pg-catalog's static tables, read without running SQL (the
/// session may plan on a Ballista cluster).
pub async fn register(ctx: &SessionContext, catalog: &str, tables: &PgCatalogStaticTables) -> DfResult<()> {
    let catalog_provider = ctx
        .catalog(catalog)
        .ok_or_else(|| DataFusionError::Plan(format!("no catalog {catalog} to add pg_catalog functions to")))?;
    let inner = catalog_provider
        .schema("pg_catalog")
        .ok_or_else(|| DataFusionError::Plan("pg_catalog is not set up".to_string()))?;
    let public = public_namespace_oid(inner.as_ref()).await?;
    let functions = northstar_functions(public);
    let pg_proc = append(&tables.pg_proc, |schema| pg_proc_rows(schema, &functions))?;
    let pg_description = append(&tables.pg_description, |schema| pg_description_rows(schema, &functions))?;
    let type_names: HashMap<i32, String> = {
        let types = concat_batches(&tables.pg_type.schema(), tables.pg_type.data())?;
        let column = |name: &str| {
            types.column_by_name(name).cloned().ok_or_else(|| DataFusionError::Plan(format!("pg_type has no {name}")))
        };
        let (oids, names) = (column("oid")?, column("typname")?);
        let (oids, names) = (oids.as_primitive::<Int32Type>(), names.as_string::<i32>());
        (0..types.num_rows()).map(|i| (oids.value(i), display_type_name(names.value(i)))).collect()
    };
    let texts = function_texts(&pg_proc, &type_names, &functions);
    let descriptions = descriptions(&pg_description);
    let pg_proc = with_text_arrays(&pg_proc, &["proacl", "proargnames", "proargmodes"])?;
    let pg_proc = with_oid_arrays(&pg_proc, &["proallargtypes"])?;

    let wrapped = PgCatalogWithFunctions {
        inner,
        pg_tables: Arc::new(CatalogRelations::new(catalog_provider.clone(), Relations::Tables)),
        pg_views: Arc::new(CatalogRelations::new(catalog_provider.clone(), Relations::Views)),
        pg_proc: Arc::new(MemTable::try_new(pg_proc.schema(), vec![vec![pg_proc]])?),
        pg_description: Arc::new(MemTable::try_new(pg_description.schema(), vec![vec![pg_description]])?),
    };
    catalog_provider.register_schema("pg_catalog", Arc::new(wrapped))?;

    ctx.register_udf(OidText::udf("pg_get_function_result", texts.result));
    ctx.register_udf(OidText::udf("pg_get_function_arguments", texts.arguments));
    ctx.register_udf(OidText::udf("pg_get_function_identity_arguments", texts.identity_arguments));
    // No function here has a SQL-standard body (`prosqlbody`): NULL, as PostgreSQL returns.
    ctx.register_udf(OidText::udf("pg_get_function_sqlbody", HashMap::new()));
    ctx.register_udf(ScalarUDF::from(ObjDescription::new(descriptions)));
    let type_names: HashMap<i64, String> = type_names.into_iter().map(|(oid, name)| (oid as i64, name)).collect();
    ctx.register_udf(OidText::of_form(REGTYPE_TEXT, type_names.clone(), OidTextForm::TypeName));
    ctx.register_udf(OidText::of_form(REGTYPE_ARRAY_TEXT, type_names, OidTextForm::TypeNames));
    Ok(())
}

/// The oid datafusion-pg-catalog gives schema `public` (it numbers schemas itself, from 16384,
/// and keeps the number): read from its `pg_namespace` on a local session, as no SQL may run
/// on the (possibly Ballista) template session.
async fn public_namespace_oid(pg_catalog: &dyn SchemaProvider) -> DfResult<i32> {
    let Some(namespaces) = pg_catalog.table("pg_namespace").await? else { return Ok(PUBLIC_NAMESPACE) };
    let batches = SessionContext::new().read_table(namespaces)?.collect().await?;
    for batch in &batches {
        let (Some(oids), Some(names)) = (batch.column_by_name("oid"), batch.column_by_name("nspname")) else {
            continue;
        };
        let (oids, names) = (cast(oids, &DataType::Int64)?, cast(names, &DataType::Utf8)?);
        let (oids, names) = (oids.as_primitive::<Int64Type>(), names.as_string::<i32>());
        if let Some(i) = (0..batch.num_rows()).find(|&i| names.value(i) == "public") {
            return Ok(oids.value(i) as i32);
        }
    }
    Ok(PUBLIC_NAMESPACE)
}

/// `table`'s rows with the rows `extra` builds for its schema appended, in one batch.
fn append(table: &ArrowTable, extra: impl FnOnce(&SchemaRef) -> DfResult<RecordBatch>) -> DfResult<RecordBatch> {
    let schema = table.schema();
    let extra = extra(&schema)?;
    Ok(concat_batches(&schema, table.data().iter().chain([&extra]))?)
}

fn texts<'a>(values: impl Iterator<Item = &'a str>) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(values))
}

fn pg_proc_rows(schema: &SchemaRef, functions: &[CatalogFunction]) -> DfResult<RecordBatch> {
    let n = functions.len();
    let ints = |f: &dyn Fn(&CatalogFunction) -> i32| -> ArrayRef {
        Arc::new(Int32Array::from_iter_values(functions.iter().map(f)))
    };
    batch_of(schema, n, |column| {
        Some(match column {
            "oid" => ints(&|f| f.oid),
            "proname" | "prosrc" => texts(functions.iter().map(|f| f.name.as_str())),
            "pronamespace" => ints(&|f| f.namespace),
            "proowner" => ints(&|_| BOOTSTRAP_OWNER),
            "prolang" => ints(&|_| INTERNAL_LANGUAGE),
            "prorettype" => ints(&|f| f.result_type_oid),
            "procost" => Arc::new(Float32Array::from(vec![1.0; n])),
            "prorows" => Arc::new(Float32Array::from_iter_values(functions.iter().map(|f| {
                if f.kind == RoutineKind::Table {
                    1000.0
                } else {
                    0.0
                }
            }))),
            "prosupport" => texts(functions.iter().map(|_| "-")),
            "prokind" => texts(functions.iter().map(|f| match f.kind {
                RoutineKind::Aggregate => "a",
                RoutineKind::Window => "w",
                RoutineKind::Scalar | RoutineKind::Table => "f",
            })),
            "provolatile" => texts(functions.iter().map(|f| match f.volatility {
                Volatility::Immutable => "i",
                Volatility::Stable => "s",
                Volatility::Volatile => "v",
            })),
            "proparallel" => texts(functions.iter().map(|_| "s")),
            "proretset" => {
                Arc::new(BooleanArray::from_iter(functions.iter().map(|f| Some(f.kind == RoutineKind::Table))))
            }
            "pronargs" => Arc::new(Int16Array::from_iter_values(
                functions.iter().map(|f| f.arguments.split(',').filter(|a| !a.trim().is_empty()).count() as i16),
            )),
            _ => return None,
        })
    })
}

fn pg_description_rows(schema: &SchemaRef, functions: &[CatalogFunction]) -> DfResult<RecordBatch> {
    batch_of(schema, functions.len(), |column| {
        Some(match column {
            "objoid" => Arc::new(Int32Array::from_iter_values(functions.iter().map(|f| f.oid))),
            "classoid" => Arc::new(Int32Array::from(vec![PG_PROC_CLASS; functions.len()])),
            "description" => texts(functions.iter().map(|f| f.description.as_str())),
            _ => return None,
        })
    })
}

/// The result and argument texts of every `pg_proc` row: Northstar's from their
/// documentation, PostgreSQL's from `prorettype`, `proargtypes` and `proargnames`.
fn function_texts(pg_proc: &RecordBatch, type_names: &HashMap<i32, String>, ours: &[CatalogFunction]) -> FunctionTexts {
    let mut texts = FunctionTexts::default();
    let column = |name: &str| pg_proc.column_by_name(name).cloned();
    let (Some(oids), Some(rettypes), Some(argtypes), Some(argnames), Some(retset), Some(kinds), Some(variadic)) = (
        column("oid"),
        column("prorettype"),
        column("proargtypes"),
        column("proargnames"),
        column("proretset"),
        column("prokind"),
        column("provariadic"),
    ) else {
        return texts;
    };
    let (oids, rettypes, argtypes, argnames, retset, kinds, variadic) = (
        oids.as_primitive::<Int32Type>(),
        rettypes.as_primitive::<Int32Type>(),
        argtypes.as_string::<i32>(),
        argnames.as_string::<i32>(),
        retset.as_boolean(),
        kinds.as_string::<i32>(),
        variadic.as_primitive::<Int32Type>(),
    );
    let type_name = |oid: i32| type_names.get(&oid).cloned().unwrap_or_else(|| "unknown".to_string());
    for row in 0..pg_proc.num_rows() {
        let oid = oids.value(row) as i64;
        if oid >= FIRST_FUNCTION_OID as i64 {
            continue;
        }
        let result = type_name(rettypes.value(row));
        let result = if retset.value(row) { format!("SETOF {result}") } else { result };
        let names: Vec<&str> = if argnames.is_null(row) {
            Vec::new()
        } else {
            argnames.value(row).trim_matches(|c| c == '{' || c == '}').split(',').collect()
        };
        let types: Vec<String> =
            argtypes.value(row).split_whitespace().filter_map(|t| t.parse().ok()).map(type_name).collect();
        let last = types.len().saturating_sub(1);
        let arguments = types
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let variadic = if i == last && variadic.value(row) != 0 { "VARIADIC " } else { "" };
                match names.get(i).map(|n| n.trim_matches('"')).filter(|n| !n.is_empty()) {
                    Some(name) => format!("{variadic}{name} {t}"),
                    None => format!("{variadic}{t}"),
                }
            })
            .collect::<Vec<_>>()
            .join(", ");
        let arguments = if arguments.is_empty() && kinds.value(row) == "a" { "*".to_string() } else { arguments };
        texts.result.insert(oid, result);
        texts.arguments.insert(oid, arguments.clone());
        texts.identity_arguments.insert(oid, arguments);
    }
    for f in ours {
        texts.result.insert(f.oid as i64, f.result.clone());
        texts.arguments.insert(f.oid as i64, f.arguments.clone());
        texts.identity_arguments.insert(f.oid as i64, f.arguments.clone());
    }
    texts
}

/// `batch` with the named columns, PostgreSQL array literals held as text (`{a,b}`), turned
/// into lists of text: PostgreSQL's types (`aclitem[]`, `text[]`, `"char"[]`), which clients
/// pass to array functions (`psql \df+` calls `array_to_string(p.proacl, …)`).
fn with_text_arrays(batch: &RecordBatch, columns: &[&str]) -> DfResult<RecordBatch> {
    with_columns_as_lists(batch, columns, |texts| {
        let mut lists = ListBuilder::new(StringBuilder::new());
        for text in texts.iter() {
            match text {
                None => lists.append_null(),
                Some(text) => {
                    // `{a,b}` as PostgreSQL prints arrays, or `['a', 'b']` as some of
                    // datafusion-pg-catalog's seed rows hold them.
                    let inner = text.trim().trim_start_matches(['{', '[']).trim_end_matches(['}', ']']);
                    for item in inner.split(',').map(|i| i.trim().trim_matches(['"', '\''])).filter(|i| !i.is_empty()) {
                        lists.values().append_value(item);
                    }
                    lists.append(true);
                }
            }
        }
        Arc::new(lists.finish())
    })
}

/// `columns` of `batch`, text in datafusion-pg-catalog (`[1034, 26]`), as oid arrays
/// (`oid[]` in PostgreSQL: `pg_proc.proallargtypes`).
fn with_oid_arrays(batch: &RecordBatch, columns: &[&str]) -> DfResult<RecordBatch> {
    with_columns_as_lists(batch, columns, |texts| {
        let mut lists = ListBuilder::new(Int32Builder::new());
        for text in texts.iter() {
            match text {
                None => lists.append_null(),
                Some(text) => {
                    lists.values().extend(oids_in_text(text).map(|oid| Some(oid as i32)));
                    lists.append(true);
                }
            }
        }
        Arc::new(lists.finish())
    })
}

/// `batch` with each of the named text columns replaced by `to_list` of it.
fn with_columns_as_lists(
    batch: &RecordBatch,
    columns: &[&str],
    to_list: impl Fn(&StringArray) -> ArrayRef,
) -> DfResult<RecordBatch> {
    let schema = batch.schema();
    let mut fields = Vec::new();
    let mut arrays = Vec::new();
    for (field, array) in schema.fields().iter().zip(batch.columns()) {
        if !columns.contains(&field.name().as_str()) || field.data_type() != &DataType::Utf8 {
            fields.push(field.clone());
            arrays.push(array.clone());
            continue;
        }
        let list = to_list(array.as_string::<i32>());
        fields.push(Arc::new(
            Field::new(field.name(), list.data_type().clone(), true).with_metadata(field.metadata().clone()),
        ));
        arrays.push(list);
    }
    Ok(RecordBatch::try_new(Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone())), arrays)?)
}

/// The oids of a vector's text, however it is written: `23 25` (oidvector), `{23,25}`,
/// `[23, 25]`.
fn oids_in_text(text: &str) -> impl Iterator<Item = i64> + '_ {
    text.split(|c: char| !c.is_ascii_digit()).filter_map(|n| n.parse().ok())
}

/// `(classoid, objoid) → description` of the object-level rows of `pg_description`.
fn descriptions(pg_description: &RecordBatch) -> HashMap<(i32, i64), String> {
    let objoid = pg_description.column(0).as_primitive::<Int32Type>();
    let classoid = pg_description.column(1).as_primitive::<Int32Type>();
    let objsubid = pg_description.column(2).as_primitive::<Int32Type>();
    let description = pg_description.column(3).as_string::<i32>();
    (0..pg_description.num_rows())
        .filter(|&i| objsubid.value(i) == 0)
        .map(|i| ((classoid.value(i), objoid.value(i) as i64), description.value(i).to_string()))
        .collect()
}

/// datafusion-pg-catalog's `pg_catalog` with `pg_proc` and `pg_description` holding
/// Northstar's rows too, and `pg_tables` / `pg_views` telling tables from views (relations.rs).
#[derive(Debug)]
struct PgCatalogWithFunctions {
    inner: Arc<dyn SchemaProvider>,
    pg_tables: Arc<CatalogRelations>,
    pg_views: Arc<CatalogRelations>,
    pg_proc: Arc<MemTable>,
    pg_description: Arc<MemTable>,
}

#[async_trait]
impl SchemaProvider for PgCatalogWithFunctions {
    fn table_names(&self) -> Vec<String> {
        self.inner.table_names()
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        match name.to_ascii_lowercase().as_str() {
            "pg_proc" => Ok(Some(self.pg_proc.clone())),
            "pg_description" => Ok(Some(self.pg_description.clone())),
            "pg_tables" => Ok(Some(self.pg_tables.clone())),
            "pg_views" => Ok(Some(self.pg_views.clone())),
            "pg_settings" => match self.inner.table(name).await? {
                Some(listed) => Ok(Some(crate::catalog_presets::pg_settings(&listed.schema())?)),
                None => Ok(None),
            },
            "pg_namespace" => match self.inner.table(name).await? {
                Some(listed) => Ok(Some(crate::catalog_presets::pg_namespace(listed)?)),
                None => Ok(None),
            },
            _ => self.inner.table(name).await,
        }
    }

    fn table_exist(&self, name: &str) -> bool {
        self.inner.table_exist(name)
    }
}

/// Reads an oid argument of any integer type as `i64`, NULL where it is NULL.
fn oids(value: &ColumnarValue, rows: usize) -> DfResult<Vec<Option<i64>>> {
    let array = cast(&value.to_array(rows)?, &DataType::Int64)?;
    let array = array.as_primitive::<Int64Type>();
    Ok(array.iter().collect())
}

/// What `x::regtype::text` and `x::regtype[]::text[]` become (catalog_rewrites.rs):
/// datafusion-pg-catalog plans `regtype` as a plain integer, so its text would be the number.
pub const REGTYPE_TEXT: &str = "regtype_text";
pub const REGTYPE_ARRAY_TEXT: &str = "regtype_array_text";

/// What an [`OidText`] function answers for an oid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OidTextForm {
    /// The object's text, NULL for an oid that names none (`pg_get_function_result` …).
    Object,
    /// A type oid as PostgreSQL prints a `regtype`: the type's SQL name (`integer`,
    /// `text[]`), the number for an oid that names no type.
    TypeName,
    /// A vector of type oids (text `23 25`, `{23,25}`, or an array) as `regtype[]::text[]`.
    TypeNames,
}

/// A text looked up by an object's oid: `pg_get_function_result` and its kin, and the type
/// names of `regtype` casts.
#[derive(Debug)]
struct OidText {
    name: &'static str,
    texts: HashMap<i64, String>,
    form: OidTextForm,
    signature: Signature,
}

impl OidText {
    fn udf(name: &'static str, texts: HashMap<i64, String>) -> ScalarUDF {
        Self::of_form(name, texts, OidTextForm::Object)
    }

    fn of_form(name: &'static str, texts: HashMap<i64, String>, form: OidTextForm) -> ScalarUDF {
        ScalarUDF::from(OidText { name, texts, form, signature: Signature::any(1, Volatility::Stable) })
    }

    fn type_name(&self, oid: i64) -> String {
        match self.texts.get(&oid).map(String::as_str) {
            // Names that are also keywords, quoted as PostgreSQL prints them.
            Some(name @ ("any" | "char")) => format!("\"{name}\""),
            Some(name) => name.to_string(),
            None => oid.to_string(),
        }
    }

    fn type_names(&self, vectors: ArrayRef) -> DfResult<ArrayRef> {
        let mut lists = ListBuilder::new(StringBuilder::new());
        let mut append = |oids: Option<Vec<i64>>| match oids {
            None => lists.append_null(),
            Some(oids) => {
                for oid in oids {
                    lists.values().append_value(self.type_name(oid));
                }
                lists.append(true);
            }
        };
        if let DataType::List(_) = vectors.data_type() {
            let vectors = cast(&vectors, &DataType::List(Arc::new(Field::new("item", DataType::Int64, true))))?;
            for vector in vectors.as_list::<i32>().iter() {
                append(vector.map(|v| v.as_primitive::<Int64Type>().iter().flatten().collect()));
            }
        } else {
            let vectors = cast(&vectors, &DataType::Utf8)?;
            for vector in vectors.as_string::<i32>().iter() {
                append(vector.map(|v| oids_in_text(v).collect()));
            }
        }
        Ok(Arc::new(lists.finish()))
    }
}

impl PartialEq for OidText {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.form == other.form && self.texts.len() == other.texts.len()
    }
}
impl Eq for OidText {}
impl Hash for OidText {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name.hash(state)
    }
}

impl ScalarUDFImpl for OidText {
    fn name(&self) -> &str {
        self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(match self.form {
            OidTextForm::TypeNames => DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
            _ => DataType::Utf8,
        })
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let out: ArrayRef = match self.form {
            OidTextForm::Object => {
                let values = oids(&args.args[0], args.number_rows)?;
                Arc::new(values.iter().map(|oid| oid.and_then(|oid| self.texts.get(&oid))).collect::<StringArray>())
            }
            OidTextForm::TypeName => {
                let values = oids(&args.args[0], args.number_rows)?;
                Arc::new(values.into_iter().map(|oid| oid.map(|oid| self.type_name(oid))).collect::<StringArray>())
            }
            OidTextForm::TypeNames => self.type_names(args.args[0].to_array(args.number_rows)?)?,
        };
        Ok(ColumnarValue::Array(out))
    }
}

/// `obj_description(oid [, catalog_name])`: the comment of an object from `pg_description`.
#[derive(Debug)]
struct ObjDescription {
    descriptions: HashMap<(i32, i64), String>,
    signature: Signature,
}

impl ObjDescription {
    fn new(descriptions: HashMap<(i32, i64), String>) -> Self {
        let signature = Signature::one_of(vec![TypeSignature::Any(1), TypeSignature::Any(2)], Volatility::Stable);
        ObjDescription { descriptions, signature }
    }
}

impl PartialEq for ObjDescription {
    fn eq(&self, other: &Self) -> bool {
        self.descriptions.len() == other.descriptions.len()
    }
}
impl Eq for ObjDescription {}
impl Hash for ObjDescription {
    fn hash<H: Hasher>(&self, state: &mut H) {
        "obj_description".hash(state)
    }
}

/// `pg_class.oid` of the system catalogs whose objects have comments.
fn catalog_class_oid(catalog: &str) -> Option<i32> {
    Some(match catalog.trim_start_matches("pg_catalog.") {
        "pg_proc" => PG_PROC_CLASS,
        "pg_class" => 1259,
        "pg_type" => 1247,
        "pg_namespace" => 2615,
        "pg_am" => 2601,
        "pg_operator" => 2617,
        "pg_database" => 1262,
        "pg_constraint" => 2606,
        "pg_language" => 2612,
        "pg_cast" => 2605,
        "pg_collation" => 3456,
        "pg_extension" => 3079,
        _ => return None,
    })
}

impl ScalarUDFImpl for ObjDescription {
    fn name(&self) -> &str {
        "obj_description"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let rows = args.number_rows;
        let objects = oids(&args.args[0], rows)?;
        let catalogs: Vec<Option<String>> = match args.args.get(1) {
            None => vec![None; rows],
            Some(value) => {
                let names = cast(&value.to_array(rows)?, &DataType::Utf8)?;
                names.as_string::<i32>().iter().map(|n| n.map(str::to_string)).collect()
            }
        };
        let out: StringArray = objects
            .iter()
            .zip(&catalogs)
            .map(|(oid, catalog)| {
                let oid = (*oid)?;
                match catalog {
                    Some(name) => self.descriptions.get(&(catalog_class_oid(name)?, oid)).cloned(),
                    // The one-argument form (deprecated in PostgreSQL) looks in pg_class.
                    None => self.descriptions.get(&(1259, oid)).cloned(),
                }
            })
            .collect();
        if args.args.len() > 2 {
            return exec_err!("obj_description takes an oid and a catalog name");
        }
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_function_and_report_has_a_result_type_arguments_and_a_description() {
        let functions = northstar_functions(PUBLIC_NAMESPACE);
        let names: Vec<&str> = functions.iter().map(|f| f.name.as_str()).collect();
        for expected in ["window_funnel", "retention", "sequence_match", "session_number", "funnel", "paths"] {
            assert!(names.contains(&expected), "{expected} missing from {names:?}");
        }
        for f in &functions {
            assert_ne!(f.result, "unknown", "{}: no argument list in probe_argument_types() is accepted", f.name);
            assert!(!f.arguments.is_empty() && !f.description.is_empty(), "{f:?}");
        }
        let funnel = functions.iter().find(|f| f.name == "window_funnel").unwrap();
        assert_eq!((funnel.result.as_str(), funnel.kind), ("integer", RoutineKind::Aggregate));
        let retention = functions.iter().find(|f| f.name == "retention").unwrap();
        assert_eq!(retention.result, "integer[]", "{retention:?}");
    }

    #[test]
    fn type_names_are_postgresql_display_names() {
        assert_eq!(display_type_name("_int8"), "bigint[]");
        assert_eq!(display_type_name("timestamptz"), "timestamp with time zone");
        assert_eq!(display_type_name("text"), "text");
        assert_eq!(
            syntax_arguments("window_funnel(window, timestamp, cond1[, cond2, ...])"),
            "window, timestamp, cond1[, cond2, ...]"
        );
    }
}
