//! The worker process: reads requests on stdin, compiles and runs jq programs with jaq, answers
//! on stdout. It holds nothing the broker needs: when a program loops it is killed, when one
//! overflows the stack (jaq recurses without a bound) it dies, and the broker starts another.

use crate::protocol::{read_frame, write_frame, Request, Response, RunResult};
use jaq_core::load::{Arena, File, Loader};
use jaq_core::{data, unwrap_valr, Compiler, Ctx, Vars};
use jaq_json::Val;
use serde_json::Value;
use std::collections::HashMap;
use std::io::{self, BufReader, BufWriter};

/// Programs one worker keeps compiled; beyond it the oldest definitions are dropped (the broker
/// defines a program again when it finds it missing).
const MAX_PROGRAMS: usize = 1024;

type Filter = jaq_core::Filter<data::JustLut<Val>>;

struct Compiled {
    filter: Filter,
    lookup: Val,
}

/// Serves requests from stdin until it closes.
pub fn serve() -> io::Result<()> {
    let mut input = BufReader::new(io::stdin().lock());
    let mut output = BufWriter::new(io::stdout().lock());
    let mut programs: HashMap<u64, Compiled> = HashMap::new();
    let mut order: Vec<u64> = Vec::new();
    while let Some(request) = read_frame::<Request>(&mut input)? {
        let response = match request {
            Request::Define { id, program, lookup } => match compile(&program, &lookup) {
                Ok(compiled) => {
                    if programs.len() >= MAX_PROGRAMS && !programs.contains_key(&id) {
                        let oldest = order.remove(0);
                        programs.remove(&oldest);
                    }
                    order.retain(|o| *o != id);
                    order.push(id);
                    programs.insert(id, compiled);
                    Response::Defined
                }
                Err(error) => Response::Failed { error },
            },
            Request::Run { id, input, max_outputs, max_output_bytes } => match programs.get(&id) {
                Some(compiled) => match run(compiled, &input, max_outputs, max_output_bytes) {
                    Ok(values) => Response::Outputs { values },
                    Err(error) => Response::Failed { error },
                },
                None => Response::Failed { error: format!("program {id} is not defined") },
            },
            Request::RunMany { id, inputs, max_outputs, max_output_bytes } => match programs.get(&id) {
                Some(compiled) => Response::Results {
                    results: inputs
                        .iter()
                        .map(|input| match run(compiled, input, max_outputs, max_output_bytes) {
                            Ok(values) => RunResult::Outputs(values),
                            Err(error) => RunResult::Failed(error),
                        })
                        .collect(),
                },
                None => Response::Failed { error: format!("program {id} is not defined") },
            },
        };
        write_frame(&mut output, &response)?;
    }
    Ok(())
}

fn to_val(value: &Value) -> Result<Val, String> {
    let text = serde_json::to_vec(value).map_err(|e| e.to_string())?;
    jaq_json::read::parse_single(&text).map_err(|e| format!("{e:?}"))
}

/// Parses and compiles `program`, with `$lookup` bound to `lookup`.
fn compile(program: &str, lookup: &Value) -> Result<Compiled, String> {
    let defs = jaq_core::defs().chain(jaq_std::defs()).chain(jaq_json::defs());
    let funs = jaq_core::funs().chain(jaq_std::funs()).chain(jaq_json::funs());
    let loader = Loader::new(defs);
    let arena = Arena::default();
    let modules = loader
        .load(&arena, File { code: program, path: () })
        .map_err(|errors| format!("the program does not parse: {}", describe(&errors)))?;
    let filter = Compiler::default()
        .with_funs(funs)
        .with_global_vars(["$lookup"])
        .compile(modules)
        .map_err(|errors| format!("the program does not compile: {}", describe(&errors)))?;
    Ok(Compiled { filter, lookup: to_val(lookup)? })
}

fn describe(errors: &impl std::fmt::Debug) -> String {
    let mut text = format!("{errors:?}");
    if text.len() > 500 {
        let mut cut = 500;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    text
}

/// Runs a compiled program on `input`, bounded in outputs and bytes.
fn run(compiled: &Compiled, input: &Value, max_outputs: usize, max_output_bytes: usize) -> Result<Vec<Value>, String> {
    let ctx = Ctx::<data::JustLut<Val>>::new(&compiled.filter.lut, Vars::new([compiled.lookup.clone()]));
    let mut values = Vec::new();
    let mut bytes = 0usize;
    for out in compiled.filter.id.run((ctx, to_val(input)?)).map(unwrap_valr) {
        let out = out.map_err(|e| format!("the program failed: {e}"))?;
        if values.len() == max_outputs {
            return Err(format!("the program gave more than {max_outputs} outputs"));
        }
        let text = out.to_string();
        bytes += text.len();
        if bytes > max_output_bytes {
            return Err(format!("the program's output is over {max_output_bytes} bytes"));
        }
        values
            .push(serde_json::from_str(&text).map_err(|e| format!("the program gave a value that is not JSON: {e}"))?);
    }
    Ok(values)
}
