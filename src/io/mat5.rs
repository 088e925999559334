//! A minimal reader of MATLAB level-5 MAT-files (MathWorks, "MAT-File Format", R2019b, chapter 1): enough
//! to take numeric matrices out of (possibly compressed) variables and struct fields, such as the CMP
//! homography dataset's `validation.pts`.
//!
//! Layout: a 128-byte header (text, subsystem offset, version, the endian indicator `"IM"` for a
//! little-endian file, `"MI"` for big-endian), then data elements `(type u32, byte count u32, data padded to 8
//! bytes)`; a *small* element packs `(count << 16 | type)` and up to 4 bytes of data into 8 bytes. A
//! variable is an `miMATRIX` (14) element, or an `miCOMPRESSED` (15) element holding a zlib stream of one.
//! A matrix holds its flags (class in the low byte), dimensions, name, then for numeric classes the real part
//! (stored in any numeric type, converted here to f64), for structs the field-name length, the names, and
//! one `miMATRIX` per element and field (column-major).
//!
//! Every size is checked against the bytes present, nesting is bounded, and decompression is bounded by
//! [`MAX_INFLATED_BYTES`], so a corrupt or hostile file gives a [`crate::Error::Format`], never a panic or a
//! huge allocation. Complex, sparse, cell, character and object arrays are skipped (read as
//! [`MatValue::Unsupported`]).

use crate::{Error, Result};
use std::path::Path;

/// Largest decompressed size of one compressed variable.
pub const MAX_INFLATED_BYTES: usize = 64 << 20;

/// Deepest nesting of structs accepted.
const MAX_DEPTH: usize = 16;

const MI_INT8: u32 = 1;
const MI_INT32: u32 = 5;
const MI_UINT32: u32 = 6;
const MI_MATRIX: u32 = 14;
const MI_COMPRESSED: u32 = 15;

const MX_STRUCT: u8 = 2;

/// One variable or struct field.
#[derive(Clone, Debug, PartialEq)]
pub struct MatArray {
    pub name: String,
    /// Dimensions, MATLAB order (rows first).
    pub dims: Vec<usize>,
    pub value: MatValue,
}

#[derive(Clone, Debug, PartialEq)]
pub enum MatValue {
    /// A real numeric array, column-major, converted to f64.
    Numeric(Vec<f64>),
    /// A struct array: field names, then `elements[e][f]` for element `e` (column-major) and field `f`.
    Struct { fields: Vec<String>, elements: Vec<Vec<MatArray>> },
    /// Any other class (cell, char, sparse, complex, object), with its class number.
    Unsupported(u8),
}

impl MatArray {
    /// The field `name` of the first element of a struct.
    pub fn field(&self, name: &str) -> Option<&MatArray> {
        match &self.value {
            MatValue::Struct { fields, elements } => {
                let i = fields.iter().position(|f| f == name)?;
                elements.first()?.get(i)
            }
            _ => None,
        }
    }
}

struct Reader<'a> {
    path: &'a Path,
    big_endian: bool,
}

impl Reader<'_> {
    fn err(&self, message: impl Into<String>) -> Error {
        Error::format(self.path, format!("not a readable MATLAB 5 MAT-file: {}", message.into()))
    }

    fn u32_at(&self, buf: &[u8], at: usize) -> Result<u32> {
        let bytes: [u8; 4] = buf
            .get(at..at.wrapping_add(4))
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| self.err(format!("truncated at byte {at}")))?;
        Ok(if self.big_endian { u32::from_be_bytes(bytes) } else { u32::from_le_bytes(bytes) })
    }

    /// The element at `*pos`: its type and data; advances `*pos` past it (and its padding).
    fn element<'b>(&self, buf: &'b [u8], pos: &mut usize) -> Result<(u32, &'b [u8])> {
        let tag = self.u32_at(buf, *pos)?;
        if tag >> 16 != 0 {
            // Small data element: 2 bytes count, 2 bytes type, 4 bytes data.
            let (kind, count) = (tag & 0xffff, (tag >> 16) as usize);
            if count > 4 {
                return Err(self.err(format!("a small element at byte {} claims {count} bytes", *pos)));
            }
            let data = buf.get(*pos + 4..*pos + 4 + count).ok_or_else(|| self.err("truncated small element"))?;
            *pos += 8;
            return Ok((kind, data));
        }
        let count = self.u32_at(buf, *pos + 4)? as usize;
        let start = *pos + 8;
        let data = buf
            .get(start..start.checked_add(count).ok_or_else(|| self.err("element size overflows"))?)
            .ok_or_else(|| self.err(format!("element at byte {} claims {count} bytes, past the end", *pos)))?;
        // Compressed elements are not padded; all others are padded to 8 bytes.
        let padded = if tag == MI_COMPRESSED { count } else { count.div_ceil(8) * 8 };
        *pos = start.saturating_add(padded);
        Ok((tag, data))
    }

    /// Numeric data of element type `kind` as f64.
    fn numbers(&self, kind: u32, data: &[u8]) -> Result<Vec<f64>> {
        let width = match kind {
            1 | 2 => 1,
            3 | 4 => 2,
            5..=7 => 4,
            9 | 12 | 13 => 8,
            _ => return Err(self.err(format!("numeric data of unknown type {kind}"))),
        };
        if !data.len().is_multiple_of(width) {
            return Err(self.err(format!("{} bytes of type {kind} is not a whole number of values", data.len())));
        }
        let be = self.big_endian;
        Ok(data
            .chunks_exact(width)
            .map(|c| {
                // Little-endian bytes padded to 8: the integer types are then read from the low end.
                let mut b = [0u8; 8];
                b[..width].copy_from_slice(c);
                if be {
                    b[..width].reverse();
                }
                let signed = |bits: u32| -> f64 {
                    let v = u64::from_le_bytes(b);
                    let shift = 64 - bits;
                    (((v << shift) as i64) >> shift) as f64
                };
                match kind {
                    1 => signed(8),
                    3 => signed(16),
                    5 => signed(32),
                    12 => signed(64),
                    2 | 4 | 6 | 13 => u64::from_le_bytes(b) as f64,
                    7 => f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64,
                    _ => f64::from_le_bytes(b),
                }
            })
            .collect())
    }

    /// The contents of an `miMATRIX` element.
    fn matrix(&self, data: &[u8], depth: usize) -> Result<MatArray> {
        if depth > MAX_DEPTH {
            return Err(self.err(format!("structs nested more than {MAX_DEPTH} deep")));
        }
        let mut pos = 0;
        if data.is_empty() {
            // An empty matrix element (an empty struct field).
            return Ok(MatArray { name: String::new(), dims: vec![0, 0], value: MatValue::Numeric(Vec::new()) });
        }
        let (kind, flags) = self.element(data, &mut pos)?;
        if kind != MI_UINT32 || flags.len() != 8 {
            return Err(self.err("a matrix does not start with its array flags"));
        }
        let flag_word = self.u32_at(flags, 0)?;
        let class = (flag_word & 0xff) as u8;
        let complex = flag_word & 0x0800 != 0;
        let (kind, dims) = self.element(data, &mut pos)?;
        if kind != MI_INT32 || dims.len() < 8 || dims.len() % 4 != 0 {
            return Err(self.err("a matrix has no valid dimensions"));
        }
        let dims: Vec<usize> = (0..dims.len() / 4)
            .map(|i| self.u32_at(dims, 4 * i).map(|d| d as i32))
            .collect::<Result<Vec<i32>>>()?
            .into_iter()
            .map(|d| usize::try_from(d).map_err(|_| self.err(format!("negative dimension {d}"))))
            .collect::<Result<_>>()?;
        let count = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).ok_or_else(|| self.err("size overflows"))?;
        let (kind, name) = self.element(data, &mut pos)?;
        if kind != MI_INT8 {
            return Err(self.err("a matrix has no name element"));
        }
        let name = String::from_utf8_lossy(name).trim_end_matches('\0').to_string();
        let value = match class {
            6..=15 if !complex => {
                let (kind, real) = self.element(data, &mut pos)?;
                let values = self.numbers(kind, real)?;
                if values.len() != count {
                    return Err(self.err(format!("`{name}` has {} values for dimensions {dims:?}", values.len())));
                }
                MatValue::Numeric(values)
            }
            MX_STRUCT => {
                let (kind, len) = self.element(data, &mut pos)?;
                let len = match (kind, len.len()) {
                    (MI_INT32, 4) => self.u32_at(len, 0)? as usize,
                    _ => return Err(self.err(format!("struct `{name}` has no field-name length"))),
                };
                let (kind, names) = self.element(data, &mut pos)?;
                if kind != MI_INT8 || len == 0 || names.len() % len != 0 {
                    return Err(self.err(format!("struct `{name}` has malformed field names")));
                }
                let fields: Vec<String> = names
                    .chunks_exact(len)
                    .map(|n| String::from_utf8_lossy(n).trim_end_matches('\0').to_string())
                    .collect();
                // Each element needs at least one 8-byte tag per field: bounds the allocation below. A struct
                // without fields keeps no elements (their number alone could be anything).
                if fields.is_empty() {
                    return Ok(MatArray { name, dims, value: MatValue::Struct { fields, elements: Vec::new() } });
                }
                if count.saturating_mul(fields.len()).saturating_mul(8) > data.len() {
                    return Err(self.err(format!("struct `{name}` claims more elements than the file holds")));
                }
                let mut elements = Vec::with_capacity(count);
                for _ in 0..count {
                    let mut values = Vec::with_capacity(fields.len());
                    for field in &fields {
                        let (kind, sub) = self.element(data, &mut pos)?;
                        if kind != MI_MATRIX {
                            return Err(self.err(format!("field `{field}` of `{name}` is not a matrix")));
                        }
                        let mut value = self.matrix(sub, depth + 1)?;
                        value.name = field.clone();
                        values.push(value);
                    }
                    elements.push(values);
                }
                MatValue::Struct { fields, elements }
            }
            other => MatValue::Unsupported(other),
        };
        Ok(MatArray { name, dims, value })
    }
}

/// Every variable of a MAT-file held in `bytes`; `path` names the file in errors.
pub fn parse_mat5(bytes: &[u8], path: &Path) -> Result<Vec<MatArray>> {
    let header_err = || Error::format(path, "not a MATLAB 5 MAT-file (no 128-byte header with \"MATLAB 5.0\")");
    if bytes.len() < 128 || !bytes.starts_with(b"MATLAB 5.0") {
        return Err(header_err());
    }
    let big_endian = match &bytes[126..128] {
        b"IM" => false,
        b"MI" => true,
        _ => return Err(header_err()),
    };
    let reader = Reader { path, big_endian };
    let mut pos = 128;
    let mut out = Vec::new();
    while pos + 8 <= bytes.len() {
        let (kind, data) = reader.element(bytes, &mut pos)?;
        match kind {
            MI_MATRIX => out.push(reader.matrix(data, 0)?),
            MI_COMPRESSED => {
                let inflated = miniz_oxide::inflate::decompress_to_vec_zlib_with_limit(data, MAX_INFLATED_BYTES)
                    .map_err(|e| {
                        reader.err(format!(
                            "a compressed variable does not inflate within {MAX_INFLATED_BYTES} bytes ({:?})",
                            e.status
                        ))
                    })?;
                let mut inner = 0;
                let (kind, sub) = reader.element(&inflated, &mut inner)?;
                if kind == MI_MATRIX {
                    out.push(reader.matrix(sub, 0)?);
                }
            }
            _ => {} // other top-level elements carry no variable
        }
    }
    Ok(out)
}
