//! Criterion micro-benchmarks of the line decoder (`chat_server::protocol::LineDecoder`): the
//! per-byte cost of turning socket reads into lines, for the shapes of input the server sees.

use std::hint::black_box;

use chat_server::protocol::{Decoded, LineDecoder};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

/// `count` chat lines of about 64 bytes each, LF-terminated.
fn lines(count: usize) -> Vec<u8> {
    let mut input = Vec::new();
    for i in 0..count {
        input.extend_from_slice(format!("@ld 7 {i} 123456789012 ").as_bytes());
        input.resize(input.len() + 40, b'x');
        input.push(b'\n');
    }
    input
}

/// Feeds `input` in chunks of `chunk` bytes and counts the lines that come out.
fn decode(decoder: &mut LineDecoder, input: &[u8], chunk: usize) -> usize {
    let mut count = 0;
    for piece in input.chunks(chunk) {
        decoder.feed(piece, 4096, |decoded| {
            if let Decoded::Line(line) = decoded {
                count += black_box(line).len();
            }
        });
    }
    count
}

fn bench(c: &mut Criterion) {
    let input = lines(1000);
    let mut group = c.benchmark_group("decoder");
    group.throughput(Throughput::Bytes(input.len() as u64));
    for (name, chunk) in [("64KiB reads", 64 * 1024), ("100-byte reads", 100)] {
        group.bench_function(name, |b| {
            let mut decoder = LineDecoder::new();
            b.iter(|| decode(&mut decoder, black_box(&input), chunk))
        });
    }
    let cyrillic = "Привет, как дела? Отлично, пойдём на кухню.\r\n".repeat(1000);
    group.throughput(Throughput::Bytes(cyrillic.len() as u64));
    group.bench_function("Cyrillic CRLF, 64KiB reads", |b| {
        let mut decoder = LineDecoder::new();
        b.iter(|| decode(&mut decoder, black_box(cyrillic.as_bytes()), 64 * 1024))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
