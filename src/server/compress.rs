//! COMPRESS=DEFLATE (RFC 4978): raw DEFLATE (RFC 1951) both ways, on top
//! of whatever the stream is (plain or TLS).
//!
//! Memory is what makes this a per-connection cost worth designing: a
//! DEFLATE compressor holds some 300 KiB of tables, an inflater its 32 KiB
//! window. The inflater must live as long as the connection (the client's
//! compressor refers back to everything it sent), but ours need not: every
//! answer ends with a sync flush, which leaves the stream on a byte
//! boundary with nothing pending, and the client's inflater reads what a
//! fresh compressor writes next as more blocks of the same stream. So the
//! compressor exists only while an answer is being written, and an idle
//! compressed session costs its inflater, not 300 KiB more (README: limits).
//!
//! Inflating is bounded too: at most `INFLATE_STEP` bytes come out per step,
//! and the rest waits compressed, so a small "zip bomb" grows the framer's
//! buffer no faster than plain bytes would.

use std::io;

use bytes::BytesMut;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// The most bytes one inflate step produces.
const INFLATE_STEP: usize = 16 * 1024;

/// zlib's default level: what Dovecot uses too.
const LEVEL: u32 = 6;

pub struct Deflate {
    /// Only while an answer is being written (see the module comment).
    compress: Option<Box<Compress>>,
    decompress: Box<Decompress>,
    /// Compressed bytes read from the client and not inflated yet.
    received: BytesMut,
    /// The last step filled its output: the inflater may hold more even
    /// with nothing left in `received`.
    inflater_full: bool,
}

impl Deflate {
    /// Starts compression; `already_read` is what the client sent after the
    /// command, which is compressed already.
    pub fn new(already_read: &[u8]) -> Deflate {
        Deflate {
            compress: None,
            decompress: Box::new(Decompress::new(false)),
            received: BytesMut::from(already_read),
            inflater_full: false,
        }
    }

    /// Where bytes read from the socket go.
    pub fn received_mut(&mut self) -> &mut BytesMut {
        &mut self.received
    }

    /// Compresses `plain`, ending with a sync flush so that the client can
    /// read all of it now. `ends_answer`: nothing follows until the client
    /// speaks again, and the compressor is let go.
    pub fn deflate(&mut self, plain: &[u8], ends_answer: bool) -> io::Result<Vec<u8>> {
        let compress = self
            .compress
            .get_or_insert_with(|| Box::new(Compress::new(Compression::new(LEVEL), false)));
        let mut out = Vec::with_capacity(plain.len() / 2 + 64);
        let mut input = plain;
        loop {
            if out.capacity() - out.len() < 64 {
                out.reserve(out.capacity().max(4096));
            }
            let (read, written) = (compress.total_in(), compress.total_out());
            compress
                .compress_vec(input, &mut out, FlushCompress::Sync)
                .map_err(io::Error::other)?;
            let consumed = (compress.total_in() - read) as usize;
            input = &input[consumed..];
            let produced = compress.total_out() - written;
            // The flush is complete once all input is in and the output
            // did not fill the room it had.
            if input.is_empty() && (out.len() < out.capacity() || produced == 0) {
                break;
            }
        }
        if ends_answer {
            self.compress = None;
        }
        Ok(out)
    }

    /// Inflates what was received into `into`: at most one step's worth;
    /// 0 when more compressed bytes must be read first.
    pub fn inflate(&mut self, into: &mut BytesMut) -> io::Result<usize> {
        let mut produced_total = 0;
        while (!self.received.is_empty() || self.inflater_full) && produced_total == 0 {
            let mut out = Vec::with_capacity(INFLATE_STEP);
            let (read, written) = (self.decompress.total_in(), self.decompress.total_out());
            let status = self
                .decompress
                .decompress_vec(&self.received, &mut out, FlushDecompress::Sync)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            let consumed = (self.decompress.total_in() - read) as usize;
            let produced = (self.decompress.total_out() - written) as usize;
            self.inflater_full = produced == INFLATE_STEP;
            let _ = self.received.split_to(consumed);
            into.extend_from_slice(&out);
            produced_total += produced;
            if status == Status::StreamEnd {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "the client ended its compressed stream",
                ));
            }
            if consumed == 0 && produced == 0 {
                // A partial block: the rest is still on its way.
                break;
            }
        }
        if self.received.is_empty() && self.received.capacity() > 64 * 1024 {
            self.received = BytesMut::new();
        }
        Ok(produced_total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The client's side: its own compressor and inflater.
    fn client_inflate(inflater: &mut Decompress, compressed: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(compressed.len() * 20 + 1024);
        inflater
            .decompress_vec(compressed, &mut out, FlushDecompress::Sync)
            .unwrap();
        out
    }

    #[test]
    fn answers_from_fresh_compressors_read_as_one_stream() {
        let mut ours = Deflate::new(b"");
        let mut theirs = Decompress::new(false);
        let first = ours.deflate(b"* OK first answer\r\n", true).unwrap();
        assert!(ours.compress.is_none());
        let second = ours.deflate(b"* 1 FETCH (FLAGS ())\r\n", false).unwrap();
        let third = ours.deflate(b"a OK done\r\n", true).unwrap();
        assert_eq!(
            client_inflate(&mut theirs, &first),
            b"* OK first answer\r\n"
        );
        assert_eq!(
            client_inflate(&mut theirs, &[second, third].concat()),
            b"* 1 FETCH (FLAGS ())\r\na OK done\r\n"
        );
    }

    #[test]
    fn inflating_is_bounded_per_step() {
        let mut client = Compress::new(Compression::new(9), false);
        let plain = vec![b'a'; 1024 * 1024];
        let mut compressed = Vec::with_capacity(16 * 1024);
        client
            .compress_vec(&plain, &mut compressed, FlushCompress::Sync)
            .unwrap();
        assert!(compressed.len() < 8 * 1024);
        let mut ours = Deflate::new(&compressed);
        let mut input = BytesMut::new();
        let step = ours.inflate(&mut input).unwrap();
        assert!(step > 0 && step <= INFLATE_STEP, "{step}");
        let mut total = step;
        loop {
            let step = ours.inflate(&mut input).unwrap();
            if step == 0 {
                break;
            }
            total += step;
        }
        assert_eq!(total, plain.len());
    }

    #[test]
    fn garbage_is_an_error() {
        let mut ours = Deflate::new(&[0xff; 64]);
        let mut input = BytesMut::new();
        assert!(ours.inflate(&mut input).is_err());
    }
}
