//! The frames megascaler writes to a worker's stdin (spec §6.1).
//!
//! Owns the wire format: `u32` big-endian message type, `u32` big-endian body length, then the
//! body (UTF-8 JSON for a job). Reading is exact: a body is read in full however the pipe splits
//! it. Nothing here knows about processes or jobs.

use std::io::{self, Read};
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// The largest body accepted (actions/runner's own limit is 50 000 000 bytes).
pub const MAX_BODY: u32 = 50_000_000;

/// Message types of the worker channel (actions/runner `ProcessChannel.cs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum FrameType {
    /// The job message.
    NewJobRequest = 1,
    /// Cancel the running job.
    CancelRequest = 2,
    /// The runner shuts down.
    RunnerShutdown = 3,
    /// The machine shuts down.
    OperatingSystemShutdown = 4,
}

/// Encodes one frame.
pub fn encode(kind: u32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + body.len());
    out.extend_from_slice(&kind.to_be_bytes());
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// Writes one frame and flushes; a body over [`MAX_BODY`] is refused, never truncated.
pub async fn write_frame<W: AsyncWrite + Unpin>(
    w: &mut W,
    kind: FrameType,
    body: &[u8],
) -> io::Result<()> {
    if body.len() > MAX_BODY as usize {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "frame body of {} bytes is over the {MAX_BODY} byte limit",
                body.len()
            ),
        ));
    }
    w.write_all(&encode(kind as u32, body)).await?;
    w.flush().await
}

/// Reads one frame; `Ok(None)` on a clean end of input before a frame starts.
pub fn read_frame<R: Read>(r: &mut R) -> io::Result<Option<(u32, Vec<u8>)>> {
    let mut header = [0u8; 8];
    let mut got = 0;
    while got < header.len() {
        match r.read(&mut header[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "input ended inside a frame header",
                ));
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let kind = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
    let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
    if len > MAX_BODY {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame body of {len} bytes is over the {MAX_BODY} byte limit"),
        ));
    }
    let mut body = vec![0u8; len as usize];
    r.read_exact(&mut body)?;
    Ok(Some((kind, body)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that hands out at most `chunk` bytes per call, like a pipe under load.
    struct Trickle<'a> {
        data: &'a [u8],
        chunk: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.chunk.min(buf.len()).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    #[test]
    fn round_trip_with_short_reads() {
        let big = vec![b'x'; 200_000];
        let mut wire = encode(1, &big);
        wire.extend(encode(2, b""));
        let mut r = Trickle {
            data: &wire,
            chunk: 7,
        };
        let (k, b) = read_frame(&mut r).unwrap().unwrap();
        assert_eq!((k, b.len()), (1, 200_000));
        let (k, b) = read_frame(&mut r).unwrap().unwrap();
        assert_eq!((k, b.len()), (2, 0));
        assert!(read_frame(&mut r).unwrap().is_none());
    }

    #[test]
    fn header_is_big_endian() {
        assert_eq!(&encode(1, b"ab")[..8], &[0, 0, 0, 1, 0, 0, 0, 2]);
    }

    #[test]
    fn truncated_and_oversized_frames_are_errors() {
        let wire = encode(1, b"hello");
        let mut r = &wire[..10];
        assert!(read_frame(&mut r).is_err());
        let mut r = &wire[..3];
        assert!(read_frame(&mut r).is_err());
        let mut huge = Vec::new();
        huge.extend_from_slice(&1u32.to_be_bytes());
        huge.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(read_frame(&mut &huge[..]).is_err());
    }
}
