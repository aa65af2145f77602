//! Who the clients of a run are: every client's role, room and target, and which worker thread
//! runs it.

use std::collections::HashSet;
use std::net::SocketAddr;

use crate::cli::{Args, Proto, Workload};

/// What one client does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Registers, joins its room and sits there.
    Idle,
    /// Receives the room's messages.
    Receiver,
    /// Sends to the room (closed loop with a window, or paced).
    Sender,
    /// Both: sends paced and receives (rooms workload).
    Talker,
    /// Connects, registers, talks once, quits, again and again.
    Churner,
}

/// One client to run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub role: Role,
    /// The room it joins (with IRC's `#`).
    pub room: String,
    /// The server it connects to.
    pub addr: SocketAddr,
    /// Unique number of this client in the run (senders put it in their messages).
    pub gid: u64,
}

/// Builds the client list of a workload, and says over how many rooms it is spread.
pub fn plans(args: &Args, addrs: &[SocketAddr]) -> (Vec<Plan>, usize) {
    let irc = args.protocol == Proto::Irc;
    let room = |name: String| if irc { format!("#{name}") } else { name };
    let mut out = Vec::new();
    // With --senders-on, senders go to that target and everyone else to the others.
    let senders_on = args
        .senders_on
        .filter(|_| addrs.len() > 1)
        .map(|i| i.min(addrs.len() - 1));
    let others: Vec<SocketAddr> = match senders_on {
        Some(i) => addrs
            .iter()
            .enumerate()
            .filter(|&(j, _)| j != i)
            .map(|(_, a)| *a)
            .collect(),
        None => addrs.to_vec(),
    };
    let mut add = |role: Role, name: String| {
        let gid = out.len() as u64;
        let addr = match senders_on {
            Some(i) if role == Role::Sender => addrs[i],
            _ => others[out.len() % others.len()],
        };
        out.push(Plan {
            role,
            room: room(name),
            addr,
            gid,
        });
    };
    let rooms = match args.workload {
        Workload::Fanout | Workload::Latency => {
            for i in 0..args.idle {
                add(Role::Idle, format!("i{}", i % 100));
            }
            for _ in 0..args.receivers {
                add(Role::Receiver, "fan".into());
            }
            for _ in 0..args.senders {
                add(Role::Sender, "fan".into());
            }
            1 + args.idle.min(100)
        }
        Workload::Idle => {
            let rooms = args.rooms.unwrap_or(100).max(1);
            for i in 0..args.connections.unwrap_or(10_000) {
                add(Role::Idle, format!("i{}", i % rooms));
            }
            rooms
        }
        Workload::Rooms => {
            let rooms = args.rooms.unwrap_or(500).max(1);
            for i in 0..rooms * args.room_size {
                add(Role::Talker, format!("r{}", i % rooms));
            }
            rooms
        }
        Workload::Churn => {
            for _ in 0..args.connections.unwrap_or(50) {
                add(Role::Churner, "churn".into());
            }
            1
        }
    };
    (out, rooms)
}

/// Deals the clients out to `threads` worker threads. With `sender_thread`, thread 0 gets the
/// senders (and, for IRC, one receiver per room to acknowledge them) and the others share the
/// rest; otherwise the clients are dealt round-robin.
pub fn share_out(
    plans: Vec<Plan>,
    threads: usize,
    sender_thread: bool,
    proto: Proto,
) -> Vec<Vec<Plan>> {
    let mut shares: Vec<Vec<Plan>> = vec![Vec::new(); threads];
    if sender_thread {
        let mut probes = HashSet::new();
        let mut next = 0;
        for plan in plans {
            let probe = plan.role == Role::Receiver
                && proto == Proto::Irc
                && probes.insert(plan.room.clone());
            if plan.role == Role::Sender || probe {
                shares[0].push(plan);
            } else {
                shares[1 + next % (threads - 1)].push(plan);
                next += 1;
            }
        }
    } else {
        for (i, plan) in plans.into_iter().enumerate() {
            shares[i % threads].push(plan);
        }
    }
    shares
}

/// How a run is laid out: its size, its pacing and its worker threads.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    /// Client sockets.
    pub clients: usize,
    /// Rooms the clients are spread over.
    pub rooms: usize,
    /// Clients that register during set-up (all but the churners).
    pub setup_total: u64,
    /// Seconds between two messages of one paced sender; `None`: closed loop.
    pub interval: Option<f64>,
    /// CPUs this process may run on.
    pub cpus: usize,
    /// Worker threads.
    pub threads: usize,
    /// Whether thread 0 runs the closed-loop senders on their own.
    pub sender_thread: bool,
}

impl Layout {
    /// The layout of `plans` (spread over `rooms`); an error if their sockets do not fit under
    /// the open-file limit.
    pub fn new(args: &Args, plans: &[Plan], rooms: usize, fd_limit: u64) -> Result<Self, String> {
        let clients = plans.len();
        let setup_total = plans.iter().filter(|p| p.role != Role::Churner).count() as u64;
        if clients as u64 + 64 > fd_limit {
            return Err(format!(
                "{clients} sockets do not fit under this process's open-file limit of {fd_limit}"
            ));
        }
        let interval = match (args.workload, args.rate) {
            (Workload::Fanout, None) | (Workload::Idle | Workload::Churn, _) => None,
            (Workload::Latency, None) => Some(args.senders.max(1) as f64 / 100.0),
            (Workload::Rooms, None) => Some(clients.max(1) as f64 / 5000.0),
            (Workload::Rooms, Some(rate)) => Some(clients.max(1) as f64 / rate),
            (_, Some(rate)) => Some(args.senders.max(1) as f64 / rate),
        };
        // Closed-loop senders get a thread of their own (by default) so that their next
        // messages leave as soon as the echo arrives, not after the receivers' reads queued
        // before it.
        let has_senders = interval.is_none() && plans.iter().any(|p| p.role == Role::Sender);
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let threads = args
            .threads
            .unwrap_or(cpus + usize::from(has_senders))
            .clamp(1, clients.max(1));
        Ok(Self {
            clients,
            rooms,
            setup_total,
            interval,
            cpus,
            threads,
            sender_thread: has_senders && threads >= 2,
        })
    }
}
