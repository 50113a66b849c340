//! How output is written: Hadoop's text format, one `key<TAB>value` line per record, or the key
//! alone when the value type is `()` (Hadoop's `NullWritable`). The separator is a job
//! parameter, `-D quern.output.separator=STR` (Hadoop's
//! `mapreduce.output.textoutputformat.separator`).
//!
//! Your own key or value type writes itself as text by implementing [`TextFormat`]:
//!
//! ```
//! use quern_sdk::TextFormat;
//!
//! struct Point { x: i64, y: i64 }
//!
//! impl TextFormat for Point {
//!     fn write_text(&self, out: &mut Vec<u8>) {
//!         self.x.write_text(out);
//!         out.push(b',');
//!         self.y.write_text(out);
//!     }
//! }
//!
//! let mut line = Vec::new();
//! quern_sdk::text::write_line("origin", &Point { x: 0, y: -1 }, b"\t", &mut line);
//! assert_eq!(line, b"origin\t0,-1\n");
//! ```

/// The job parameter that sets the separator between key and value on output lines.
pub const SEPARATOR_PARAM: &str = "quern.output.separator";
/// The separator when the job sets none.
pub const DEFAULT_SEPARATOR: &[u8] = b"\t";

/// Writes itself as one field of a text output line. The [module docs](crate::text) show one for a type of your own.
pub trait TextFormat {
    /// No field at all: a line whose value is of this type is the key alone, with no TAB.
    const ABSENT: bool = false;
    /// Appends its text to `out`.
    fn write_text(&self, out: &mut Vec<u8>);
}

/// No value: lines are the key alone.
impl TextFormat for () {
    const ABSENT: bool = true;
    fn write_text(&self, _: &mut Vec<u8>) {}
}

impl TextFormat for [u8] {
    fn write_text(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self);
    }
}

impl TextFormat for Vec<u8> {
    fn write_text(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self);
    }
}

impl TextFormat for str {
    fn write_text(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_bytes());
    }
}

impl TextFormat for String {
    fn write_text(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_bytes());
    }
}

macro_rules! integer_text {
    ($($t:ty),*) => {$(
        impl TextFormat for $t {
            fn write_text(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(itoa::Buffer::new().format(*self).as_bytes());
            }
        }
    )*};
}

integer_text!(u8, u16, u32, u64, i32, i64, usize);

impl TextFormat for f64 {
    fn write_text(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.to_string().as_bytes());
    }
}

/// Appends `key`, `separator`, `value` and a newline to `out`, or `key\n` if the value is
/// absent (`()`).
pub fn write_line<K: TextFormat + ?Sized, V: TextFormat + ?Sized>(
    key: &K,
    value: &V,
    separator: &[u8],
    out: &mut Vec<u8>,
) {
    key.write_text(out);
    if !V::ABSENT {
        out.extend_from_slice(separator);
        value.write_text(out);
    }
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_key_tab_value_newline() {
        let mut out = Vec::new();
        write_line(b"caf\xc3\xa9".as_slice(), &1234u64, b"\t", &mut out);
        write_line("neg", &-5i64, b", ", &mut out);
        assert_eq!(out, b"caf\xc3\xa9\t1234\nneg, -5\n");
    }

    #[test]
    fn a_unit_value_writes_the_key_alone() {
        let mut out = Vec::new();
        write_line("key only", &(), b"\t", &mut out);
        assert_eq!(out, b"key only\n");
    }
}
