//! The frames between the broker and a transform worker: a 4-byte big-endian length, then a
//! JSON document. Requests define a program once per worker (by an id the broker gives each
//! version of a transform), then run it on inputs.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::io::{self, Read, Write};

/// Largest frame either side accepts.
pub const MAX_FRAME_BYTES: usize = 64 << 20;

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Compile `program` under `id`, with `lookup` bound to `$lookup`.
    Define { id: u64, program: String, lookup: Value },
    /// Run program `id` on `input`; at most `max_outputs` values of at most `max_output_bytes`
    /// of JSON in all.
    Run { id: u64, input: Value, max_outputs: usize, max_output_bytes: usize },
    /// Run program `id` on each of `inputs` (each with those bounds); one result per input.
    RunMany { id: u64, inputs: Vec<Value>, max_outputs: usize, max_output_bytes: usize },
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Response {
    Defined,
    Outputs {
        values: Vec<Value>,
    },
    /// One result per input of a `RunMany`.
    Results {
        results: Vec<RunResult>,
    },
    Failed {
        error: String,
    },
}

/// The outcome of one input of a `RunMany`.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum RunResult {
    Outputs(Vec<Value>),
    Failed(String),
}

pub fn write_frame<T: Serialize>(out: &mut impl Write, value: &T) -> io::Result<()> {
    let bytes = serde_json::to_vec(value).map_err(io::Error::other)?;
    out.write_all(&(bytes.len() as u32).to_be_bytes())?;
    out.write_all(&bytes)?;
    out.flush()
}

/// The next frame, or `None` at the end of the input.
pub fn read_frame<T: for<'de> Deserialize<'de>>(input: &mut impl Read) -> io::Result<Option<T>> {
    let mut len = [0u8; 4];
    match input.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME_BYTES {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("a frame of {len} bytes")));
    }
    let mut bytes = vec![0; len];
    input.read_exact(&mut bytes)?;
    serde_json::from_slice(&bytes).map(Some).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}
