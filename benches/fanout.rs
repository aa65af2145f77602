//! Criterion micro-benchmark of the fan-out path: one room line from `chat_server::chat::Chat`
//! to every member, through an [`Outbox`] that only counts, so what is measured is the chat's
//! own cost per delivery (formatting once, iterating the members).

use std::hint::black_box;
use std::time::Instant;

use chat_server::chat::{Chat, ChatConfig, ClientId, Outbox};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

/// Counts lines and bytes instead of sending them.
#[derive(Default)]
struct Counting {
    lines: u64,
    bytes: u64,
}

impl Outbox for Counting {
    fn send(&mut self, _to: ClientId, line: &[u8]) {
        self.lines += 1;
        self.bytes += black_box(line).len() as u64;
    }
    fn close(&mut self, _to: ClientId) {}
}

/// A chat with `members` named clients in room `fan` (and, as always, `main`).
fn room_of(members: usize) -> Chat {
    let mut chat = Chat::new(ChatConfig::default());
    let mut out = Counting::default();
    let now = Instant::now();
    for index in 0..members {
        let id = ClientId::new(index);
        chat.connect(id, &mut out);
        chat.handle_line(id, &format!("/nick u{index}"), now, &mut out);
        chat.handle_line(id, "/join fan", now, &mut out);
    }
    chat
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("fanout");
    let text = format!("@ld 7 1 123456789012 {}", "x".repeat(42));
    for members in [10, 1000, 5000] {
        let mut chat = room_of(members);
        let now = Instant::now();
        group.throughput(Throughput::Elements(members as u64));
        group.bench_with_input(BenchmarkId::new("say", members), &members, |b, _| {
            let mut out = Counting::default();
            b.iter(|| chat.handle_line(ClientId::new(0), black_box(&text), now, &mut out))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
