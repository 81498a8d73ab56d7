/*
 *
 * Copyright 2025 gRPC authors.
 *
 * Permission is hereby granted, free of charge, to any person obtaining a copy
 * of this software and associated documentation files (the "Software"), to
 * deal in the Software without restriction, including without limitation the
 * rights to use, copy, modify, merge, publish, distribute, sublicense, and/or
 * sell copies of the Software, and to permit persons to whom the Software is
 * furnished to do so, subject to the following conditions:
 *
 * The above copyright notice and this permission notice shall be included in
 * all copies or substantial portions of the Software.
 *
 * THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
 * IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
 * FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
 * AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
 * LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING
 * FROM, OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS
 * IN THE SOFTWARE.
 *
 */

use crate::{Status, metadata::MetadataValue};
use bytes::{Buf, BufMut, BytesMut};
#[cfg(feature = "deflate")]
use flate2::read::{ZlibDecoder, ZlibEncoder};
use std::{borrow::Cow, fmt};
#[cfg(feature = "zstd")]
use zstd::stream::read::{Decoder, Encoder};

pub(crate) const ENCODING_HEADER: &str = "grpc-encoding";
pub(crate) const ACCEPT_ENCODING_HEADER: &str = "grpc-accept-encoding";

/// Struct used to configure which encodings are enabled on a server or channel.
///
/// Represents an ordered list of compression encodings that are enabled.
#[derive(Debug, Default, Clone, Copy)]
pub struct EnabledCompressionEncodings {
    inner: [Option<CompressionEncoding>; 3],
}

impl EnabledCompressionEncodings {
    /// Enable a [`CompressionEncoding`].
    ///
    /// Adds the new encoding to the end of the encoding list.
    pub fn enable(&mut self, encoding: CompressionEncoding) {
        for e in self.inner.iter_mut() {
            match e {
                Some(e) if *e == encoding => return,
                None => {
                    *e = Some(encoding);
                    return;
                }
                _ => continue,
            }
        }
    }

    /// Remove the last [`CompressionEncoding`].
    pub fn pop(&mut self) -> Option<CompressionEncoding> {
        self.inner
            .iter_mut()
            .rev()
            .find(|entry| entry.is_some())?
            .take()
    }

    pub(crate) fn into_accept_encoding_header_value(self) -> Option<http::HeaderValue> {
        let mut value = BytesMut::new();
        for encoding in self.inner.into_iter().flatten() {
            value.put_slice(encoding.as_str().as_bytes());
            value.put_u8(b',');
        }

        if value.is_empty() {
            return None;
        }

        value.put_slice(b"identity");
        Some(http::HeaderValue::from_maybe_shared(value).unwrap())
    }

    /// Check if a [`CompressionEncoding`] is enabled.
    pub fn is_enabled(&self, encoding: CompressionEncoding) -> bool {
        self.inner.contains(&Some(encoding))
    }

    /// Check if any [`CompressionEncoding`]s are enabled.
    pub fn is_empty(&self) -> bool {
        self.inner.iter().all(|e| e.is_none())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CompressionSettings {
    pub(crate) encoding: CompressionEncoding,
    /// buffer_growth_interval controls memory growth for internal buffers to balance resizing cost against memory waste.
    /// The default buffer growth interval is 8 kilobytes.
    pub(crate) buffer_growth_interval: usize,
}

/// The compression encodings Tonic supports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CompressionEncoding {
    #[allow(missing_docs)]
    #[cfg(feature = "gzip")]
    Gzip,
    #[allow(missing_docs)]
    #[cfg(feature = "deflate")]
    Deflate,
    #[allow(missing_docs)]
    #[cfg(feature = "zstd")]
    Zstd,
}

impl CompressionEncoding {
    pub(crate) const ENCODINGS: &'static [CompressionEncoding] = &[
        #[cfg(feature = "gzip")]
        CompressionEncoding::Gzip,
        #[cfg(feature = "deflate")]
        CompressionEncoding::Deflate,
        #[cfg(feature = "zstd")]
        CompressionEncoding::Zstd,
    ];

    /// Based on the `grpc-accept-encoding` header, pick an encoding to use.
    pub(crate) fn from_accept_encoding_header(
        map: &http::HeaderMap,
        enabled_encodings: EnabledCompressionEncodings,
    ) -> Option<Self> {
        if enabled_encodings.is_empty() {
            return None;
        }

        let header_value = map.get(ACCEPT_ENCODING_HEADER)?;
        let header_value_str = header_value.to_str().ok()?;

        split_by_comma(header_value_str).find_map(|value| match value {
            #[cfg(feature = "gzip")]
            "gzip" if enabled_encodings.is_enabled(CompressionEncoding::Gzip) => {
                Some(CompressionEncoding::Gzip)
            }
            #[cfg(feature = "deflate")]
            "deflate" if enabled_encodings.is_enabled(CompressionEncoding::Deflate) => {
                Some(CompressionEncoding::Deflate)
            }
            #[cfg(feature = "zstd")]
            "zstd" if enabled_encodings.is_enabled(CompressionEncoding::Zstd) => {
                Some(CompressionEncoding::Zstd)
            }
            _ => None,
        })
    }

    /// Get the value of `grpc-encoding` header. Returns an error if the encoding isn't supported.
    pub(crate) fn from_encoding_header(
        map: &http::HeaderMap,
        enabled_encodings: EnabledCompressionEncodings,
    ) -> Result<Option<Self>, Status> {
        let Some(header_value) = map.get(ENCODING_HEADER) else {
            return Ok(None);
        };

        match header_value.as_bytes() {
            #[cfg(feature = "gzip")]
            b"gzip" if enabled_encodings.is_enabled(CompressionEncoding::Gzip) => {
                Ok(Some(CompressionEncoding::Gzip))
            }
            #[cfg(feature = "deflate")]
            b"deflate" if enabled_encodings.is_enabled(CompressionEncoding::Deflate) => {
                Ok(Some(CompressionEncoding::Deflate))
            }
            #[cfg(feature = "zstd")]
            b"zstd" if enabled_encodings.is_enabled(CompressionEncoding::Zstd) => {
                Ok(Some(CompressionEncoding::Zstd))
            }
            b"identity" => Ok(None),
            other => {
                let other = match std::str::from_utf8(other) {
                    Ok(s) => Cow::Borrowed(s),
                    Err(_) => Cow::Owned(format!("{other:?}")),
                };

                let mut status = Status::unimplemented(format!(
                    "Content is compressed with `{other}` which isn't supported"
                ));

                let header_value = enabled_encodings
                    .into_accept_encoding_header_value()
                    .map(MetadataValue::unchecked_from_header_value)
                    .unwrap_or_else(|| MetadataValue::from_static("identity"));
                status
                    .metadata_mut()
                    .insert(ACCEPT_ENCODING_HEADER, header_value);

                Err(status)
            }
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            #[cfg(feature = "gzip")]
            CompressionEncoding::Gzip => "gzip",
            #[cfg(feature = "deflate")]
            CompressionEncoding::Deflate => "deflate",
            #[cfg(feature = "zstd")]
            CompressionEncoding::Zstd => "zstd",
        }
    }

    #[cfg(any(feature = "gzip", feature = "deflate", feature = "zstd"))]
    pub(crate) fn into_header_value(self) -> http::HeaderValue {
        http::HeaderValue::from_static(self.as_str())
    }
}

impl fmt::Display for CompressionEncoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn split_by_comma(s: &str) -> impl Iterator<Item = &str> {
    s.split(',').map(|s| s.trim())
}

/// Compress `len` bytes from `decompressed_buf` into `out_buf`.
/// buffer_size_increment is a hint to control the growth of out_buf versus the cost of resizing it.
#[allow(unused_variables, unreachable_code)]
pub(crate) fn compress(
    settings: CompressionSettings,
    decompressed_buf: &mut BytesMut,
    out_buf: &mut BytesMut,
    len: usize,
) -> Result<(), std::io::Error> {
    let buffer_growth_interval = settings.buffer_growth_interval;
    let capacity = ((len / buffer_growth_interval) + 1) * buffer_growth_interval;
    out_buf.reserve(capacity);

    #[cfg(any(feature = "deflate", feature = "zstd"))]
    let mut out_writer = out_buf.writer();

    match settings.encoding {
        #[cfg(feature = "gzip")]
        CompressionEncoding::Gzip => {
            #[cfg(any(feature = "deflate", feature = "zstd"))]
            let out_buf = out_writer.get_mut();
            gzip(&decompressed_buf[0..len], out_buf)?;
        }
        #[cfg(feature = "deflate")]
        CompressionEncoding::Deflate => {
            let mut deflate_encoder = ZlibEncoder::new(
                &decompressed_buf[0..len],
                // FIXME: support customizing the compression level
                flate2::Compression::new(6),
            );
            std::io::copy(&mut deflate_encoder, &mut out_writer)?;
        }
        #[cfg(feature = "zstd")]
        CompressionEncoding::Zstd => {
            let mut zstd_encoder = Encoder::new(
                &decompressed_buf[0..len],
                // FIXME: support customizing the compression level
                zstd::DEFAULT_COMPRESSION_LEVEL,
            )?;
            std::io::copy(&mut zstd_encoder, &mut out_writer)?;
        }
    }

    decompressed_buf.advance(len);

    Ok(())
}

#[cfg(feature = "gzip")]
thread_local! {
    /// This thread's deflate state, reset for each message: a new one
    /// allocates about 310 KiB zeroed (a reset clears 160 KiB of it), which
    /// costs more than compressing a small message.
    static DEFLATE: std::cell::RefCell<Option<flate2::Compress>> =
        const { std::cell::RefCell::new(None) };
}

/// Appends `input` to `out` as a gzip member (RFC 1952), with the header
/// `flate2`'s `GzEncoder` writes (no name, no time, OS unknown) and the
/// compression level tonic uses (6).
#[cfg(feature = "gzip")]
fn gzip(input: &[u8], out: &mut BytesMut) -> Result<(), std::io::Error> {
    use flate2::{Compress, Compression, FlushCompress, Status};
    let failed = |e: flate2::CompressError| std::io::Error::new(std::io::ErrorKind::Other, e);
    let mut deflated = Vec::with_capacity(input.len() / 2 + 64);
    DEFLATE.with(|cell| {
        let mut cell = cell.borrow_mut();
        let c = cell.get_or_insert_with(|| Compress::new(Compression::new(6), false));
        c.reset();
        loop {
            let consumed = usize::try_from(c.total_in()).unwrap_or(input.len());
            let rest = input.get(consumed..).unwrap_or_default();
            match c
                .compress_vec(rest, &mut deflated, FlushCompress::Finish)
                .map_err(failed)?
            {
                Status::StreamEnd => return Ok::<(), std::io::Error>(()),
                Status::Ok | Status::BufError => deflated.reserve(deflated.capacity().max(64)),
            }
        }
    })?;
    let mut crc = flate2::Crc::new();
    crc.update(input);
    out.reserve(10 + deflated.len() + 8);
    out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]);
    out.extend_from_slice(&deflated);
    out.extend_from_slice(&crc.sum().to_le_bytes());
    // ISIZE: the input's length modulo 2^32.
    out.extend_from_slice(&(input.len() as u32).to_le_bytes());
    Ok(())
}

#[cfg(feature = "gzip")]
thread_local! {
    /// This thread's inflate state, reset for each message (which clears its
    /// 32 KiB window), and the buffer it inflates into, reused without
    /// being cleared: `GzDecoder` allocated a state (about 43 KiB, zeroed)
    /// and a 32 KiB read buffer (zeroed) per message.
    static INFLATE: std::cell::RefCell<Option<(flate2::Decompress, Vec<u8>)>> =
        const { std::cell::RefCell::new(None) };
}

/// The deflate data of the gzip member `input` starts with (RFC 1952): the
/// bytes after its header.
#[cfg(feature = "gzip")]
fn gzip_body(input: &[u8]) -> Result<&[u8], std::io::Error> {
    const FHCRC: u8 = 0x02;
    const FEXTRA: u8 = 0x04;
    const FNAME: u8 = 0x08;
    const FCOMMENT: u8 = 0x10;
    let invalid = |what: &str| {
        std::io::Error::new(std::io::ErrorKind::InvalidData, format!("invalid gzip header: {what}"))
    };
    let fixed = input.get(..10).ok_or_else(|| invalid("too short"))?;
    if fixed[..3] != [0x1f, 0x8b, 8] {
        return Err(invalid("not a gzip member with deflate data"));
    }
    let flags = fixed[3];
    if flags & 0xe0 != 0 {
        return Err(invalid("reserved flags set"));
    }
    let mut rest = &input[10..];
    if flags & FEXTRA != 0 {
        let len = rest.get(..2).ok_or_else(|| invalid("truncated extra field"))?;
        let len = usize::from(u16::from_le_bytes([len[0], len[1]]));
        rest = rest.get(2 + len..).ok_or_else(|| invalid("truncated extra field"))?;
    }
    for (flag, what) in [(FNAME, "truncated name"), (FCOMMENT, "truncated comment")] {
        if flags & flag != 0 {
            let end = rest.iter().position(|&b| b == 0).ok_or_else(|| invalid(what))?;
            rest = &rest[end + 1..];
        }
    }
    if flags & FHCRC != 0 {
        rest = rest.get(2..).ok_or_else(|| invalid("truncated header checksum"))?;
    }
    Ok(rest)
}

/// Appends the data of the gzip member `input` to `out`, checking its CRC-32
/// and length as `flate2`'s `GzDecoder` did. Output past `out`'s limit is an
/// error of kind `WriteZero`, as from the writer `GzDecoder` was copied to.
#[cfg(feature = "gzip")]
fn gunzip(input: &[u8], out: &mut bytes::buf::Limit<&mut BytesMut>) -> Result<(), std::io::Error> {
    use flate2::{Decompress, FlushDecompress, Status};
    let corrupt = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    let body = gzip_body(input)?;
    let mut crc = flate2::Crc::new();
    let consumed = INFLATE.with(|cell| {
        let mut cell = cell.borrow_mut();
        let (d, chunk) = cell
            .get_or_insert_with(|| (Decompress::new(false), Vec::with_capacity(16 * 1024)));
        d.reset(false);
        loop {
            let read = d.total_in();
            let at = usize::try_from(read).unwrap_or(body.len());
            chunk.clear();
            let status = d
                .decompress_vec(body.get(at..).unwrap_or_default(), chunk, FlushDecompress::None)
                .map_err(|e| corrupt(&format!("corrupt deflate stream: {e}")))?;
            let produced = chunk.as_slice();
            let n = produced.len();
            if n > out.remaining_mut() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::WriteZero,
                    "decompressed message past the limit",
                ));
            }
            crc.update(produced);
            out.put_slice(produced);
            match status {
                Status::StreamEnd => return Ok(usize::try_from(d.total_in()).unwrap_or(body.len())),
                // No progress with input left means it ended early.
                _ if d.total_in() == read && n == 0 => {
                    return Err(corrupt("truncated deflate stream"));
                }
                _ => {}
            }
        }
    })?;
    let trailer = body
        .get(consumed..consumed + 8)
        .ok_or_else(|| corrupt("gzip trailer missing"))?;
    let sum = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
    let size = u32::from_le_bytes([trailer[4], trailer[5], trailer[6], trailer[7]]);
    if sum != crc.sum() || size != crc.amount() {
        return Err(corrupt("corrupt gzip stream does not have a matching checksum"));
    }
    Ok(())
}

/// Decompress `len` bytes from `compressed_buf` into `out_buf`.
#[allow(unused_variables, unreachable_code)]
pub(crate) fn decompress(
    settings: CompressionSettings,
    compressed_buf: &mut BytesMut,
    mut out_buf: bytes::buf::Limit<&mut BytesMut>,
    len: usize,
) -> Result<(), std::io::Error> {
    let buffer_growth_interval = settings.buffer_growth_interval;
    let estimate_decompressed_len = len * 2;
    let capacity = std::cmp::min(
        bytes::buf::Limit::limit(&out_buf),
        ((estimate_decompressed_len / buffer_growth_interval) + 1) * buffer_growth_interval,
    );

    out_buf.get_mut().reserve(capacity);

    #[cfg(any(feature = "gzip", feature = "deflate", feature = "zstd"))]
    let mut out_writer = out_buf.writer();

    match settings.encoding {
        #[cfg(feature = "gzip")]
        CompressionEncoding::Gzip => {
            gunzip(&compressed_buf[0..len], out_writer.get_mut())?;
        }
        #[cfg(feature = "deflate")]
        CompressionEncoding::Deflate => {
            let mut deflate_decoder = ZlibDecoder::new(&compressed_buf[0..len]);
            std::io::copy(&mut deflate_decoder, &mut out_writer)?;
        }
        #[cfg(feature = "zstd")]
        CompressionEncoding::Zstd => {
            let mut zstd_decoder = Decoder::new(&compressed_buf[0..len])?;
            std::io::copy(&mut zstd_decoder, &mut out_writer)?;
        }
    }

    compressed_buf.advance(len);

    Ok(())
}

/// Controls compression behavior for individual messages within a stream.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum SingleMessageCompressionOverride {
    /// Inherit whatever compression is already configured. If the stream is compressed this
    /// message will also be configured.
    ///
    /// This is the default.
    #[default]
    Inherit,
    /// Don't compress this message, even if compression is enabled on the stream.
    Disable,
}

#[cfg(test)]
mod tests {
    #[cfg(any(feature = "gzip", feature = "deflate", feature = "zstd"))]
    use http::HeaderValue;

    use super::*;

    #[test]
    fn convert_none_into_header_value() {
        let encodings = EnabledCompressionEncodings::default();

        assert!(encodings.into_accept_encoding_header_value().is_none());
    }

    #[test]
    #[cfg(feature = "gzip")]
    fn convert_gzip_into_header_value() {
        const GZIP: HeaderValue = HeaderValue::from_static("gzip,identity");

        let encodings = EnabledCompressionEncodings {
            inner: [Some(CompressionEncoding::Gzip), None, None],
        };

        assert_eq!(encodings.into_accept_encoding_header_value().unwrap(), GZIP);

        let encodings = EnabledCompressionEncodings {
            inner: [None, None, Some(CompressionEncoding::Gzip)],
        };

        assert_eq!(encodings.into_accept_encoding_header_value().unwrap(), GZIP);
    }

    #[test]
    #[cfg(feature = "zstd")]
    fn convert_zstd_into_header_value() {
        const ZSTD: HeaderValue = HeaderValue::from_static("zstd,identity");

        let encodings = EnabledCompressionEncodings {
            inner: [Some(CompressionEncoding::Zstd), None, None],
        };

        assert_eq!(encodings.into_accept_encoding_header_value().unwrap(), ZSTD);

        let encodings = EnabledCompressionEncodings {
            inner: [None, None, Some(CompressionEncoding::Zstd)],
        };

        assert_eq!(encodings.into_accept_encoding_header_value().unwrap(), ZSTD);
    }

    #[test]
    #[cfg(all(feature = "gzip", feature = "zstd"))]
    fn from_accept_encoding_header_respects_server_enabled_encodings() {
        // Regression test for the case where the client advertises multiple
        // encodings in its `grpc-accept-encoding` header but the server only
        // enabled a subset of them via `.send_compressed(...)`.
        //
        // Previously, `from_accept_encoding_header` would pick the first
        // encoding in the client's list whose `cfg(feature = ...)` was
        // compiled in, without checking whether the server actually enabled
        // that encoding. That meant a server configured for Zstd-only would
        // gzip its responses whenever a client listed `gzip` before `zstd`
        // in `grpc-accept-encoding` — even though the server never asked for
        // gzip and (in `into_accept_encoding_header_value`) would never have
        // advertised it.
        //
        // The selected encoding must come from the intersection of the
        // server's enabled set and the client's accept list, preserving the
        // client's preference order.
        let mut enabled = EnabledCompressionEncodings::default();
        enabled.enable(CompressionEncoding::Zstd);
        assert!(enabled.is_enabled(CompressionEncoding::Zstd));
        assert!(!enabled.is_enabled(CompressionEncoding::Gzip));

        let mut headers = http::HeaderMap::new();
        headers.insert(
            ACCEPT_ENCODING_HEADER,
            HeaderValue::from_static("gzip,zstd,identity"),
        );

        assert_eq!(
            CompressionEncoding::from_accept_encoding_header(&headers, enabled),
            Some(CompressionEncoding::Zstd),
            "server has only Zstd enabled; must not pick Gzip just because \
             the client listed it first",
        );
    }

    #[test]
    #[cfg(all(feature = "gzip", feature = "zstd"))]
    fn from_accept_encoding_header_returns_none_when_no_overlap() {
        // If the client's `grpc-accept-encoding` and the server's enabled
        // encodings have no overlap, no compression should be selected — the
        // server should fall back to sending the response uncompressed.
        let mut enabled = EnabledCompressionEncodings::default();
        enabled.enable(CompressionEncoding::Zstd);

        let mut headers = http::HeaderMap::new();
        headers.insert(
            ACCEPT_ENCODING_HEADER,
            HeaderValue::from_static("gzip,identity"),
        );

        assert_eq!(
            CompressionEncoding::from_accept_encoding_header(&headers, enabled),
            None,
        );
    }

    #[test]
    #[cfg(all(feature = "gzip", feature = "zstd"))]
    fn from_accept_encoding_header_uses_client_preference_order() {
        // When multiple enabled encodings appear in the client's accept list,
        // the client's ordering wins. Both encodings are enabled on the
        // server, but the client prefers gzip.
        let mut enabled = EnabledCompressionEncodings::default();
        enabled.enable(CompressionEncoding::Zstd);
        enabled.enable(CompressionEncoding::Gzip);

        let mut headers = http::HeaderMap::new();
        headers.insert(
            ACCEPT_ENCODING_HEADER,
            HeaderValue::from_static("gzip,zstd,identity"),
        );

        assert_eq!(
            CompressionEncoding::from_accept_encoding_header(&headers, enabled),
            Some(CompressionEncoding::Gzip),
        );
    }

    #[test]
    #[cfg(all(feature = "gzip", feature = "deflate", feature = "zstd"))]
    fn convert_compression_encodings_into_header_value() {
        let encodings = EnabledCompressionEncodings {
            inner: [
                Some(CompressionEncoding::Gzip),
                Some(CompressionEncoding::Deflate),
                Some(CompressionEncoding::Zstd),
            ],
        };

        assert_eq!(
            encodings.into_accept_encoding_header_value().unwrap(),
            HeaderValue::from_static("gzip,deflate,zstd,identity"),
        );

        let encodings = EnabledCompressionEncodings {
            inner: [
                Some(CompressionEncoding::Zstd),
                Some(CompressionEncoding::Deflate),
                Some(CompressionEncoding::Gzip),
            ],
        };

        assert_eq!(
            encodings.into_accept_encoding_header_value().unwrap(),
            HeaderValue::from_static("zstd,deflate,gzip,identity"),
        );
    }
}
