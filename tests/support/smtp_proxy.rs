//! A fault-injecting relay in front of an SMTP server (Mailpit, plain SMTP only): a TCP proxy on
//! loopback that follows the SMTP dialogue line by line, counts the messages the server accepted, and
//! can, at run time, refuse connections ([`Mode::Down`]) or withhold the server's acceptance of a
//! message from the client ([`Mode::HoldAfterData`]): the server has the message, the client does not
//! know it, and the test can kill the client in that window.
//!
//! It runs on a thread with a runtime of its own, so it keeps relaying while a test blocks.
//!
//! It pairs each reply with the command it answers, in order, which holds for any client while the
//! server offers neither PIPELINING nor CHUNKING (BDAT): Mailpit offers neither, so clients send
//! one command at a time and the message with DATA. STARTTLS is not followed: after it, the relay
//! still passes the bytes but no longer counts or holds.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

/// What the relay does, switchable with [`SmtpProxy::set_mode`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Relays everything.
    Pass,
    /// Its port refuses connections (the listener is closed) and open connections are cut, as when a
    /// relay goes down.
    Down,
    /// Relays everything but the server's 2xx reply to the end of a message's DATA: that reply is
    /// held, with the connection open, until the mode is `Pass` again (then it is delivered) or
    /// `Down` (then the connection is cut); the client may also go away meanwhile.
    HoldAfterData,
}

/// What the relay has seen since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Client connections accepted.
    pub connections: u64,
    /// Messages the server accepted: 2xx replies to the end of DATA.
    pub accepted: u64,
    /// Of those, the replies held back in [`Mode::HoldAfterData`].
    pub held: u64,
}

/// A mode change for the relay's thread, and where to say that it is in force.
type Control = (Mode, std::sync::mpsc::Sender<Result<(), String>>);

/// The relay; it stops, cutting every connection, when dropped.
pub struct SmtpProxy {
    addr: SocketAddr,
    control: Option<mpsc::UnboundedSender<Control>>,
    counts: Arc<watch::Sender<Counts>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SmtpProxy {
    /// A relay on a free loopback port, in [`Mode::Pass`], to the SMTP server at `upstream`.
    pub fn start(upstream: SocketAddr) -> SmtpProxy {
        let (control, commands) = mpsc::unbounded_channel();
        let counts = Arc::new(watch::Sender::new(Counts::default()));
        let (bound, addr) = std::sync::mpsc::channel();
        let relay_counts = counts.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("the SMTP proxy's runtime");
            runtime.block_on(async move {
                // tokio sets SO_REUSEADDR, which lets Pass bind the port again after Down while
                // the connections it cut are in TIME_WAIT.
                let listener = TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind the SMTP proxy");
                bound.send(listener.local_addr().unwrap()).unwrap();
                serve(listener, upstream, commands, relay_counts).await;
            });
            // Dropping the runtime drops every connection's task and with it its sockets.
        });
        SmtpProxy {
            addr: addr.recv().expect("the SMTP proxy started"),
            control: Some(control),
            counts,
            thread: Some(thread),
        }
    }

    /// Where clients connect: `127.0.0.1:port`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Switches the mode; returns once it is in force (after `Down`, connections are refused; after
    /// `Pass`, accepted, and held replies are on their way).
    pub fn set_mode(&self, mode: Mode) {
        let (done, result) = std::sync::mpsc::channel();
        self.control
            .as_ref()
            .unwrap()
            .send((mode, done))
            .expect("the SMTP proxy runs");
        result
            .recv()
            .expect("the SMTP proxy answers")
            .unwrap_or_else(|e| panic!("SMTP proxy: {mode:?}: {e}"));
    }

    /// The counts now.
    pub fn counts(&self) -> Counts {
        *self.counts.borrow()
    }

    /// Waits until the counts satisfy `done` and returns them; panics after `timeout`.
    pub async fn wait_until(
        &self,
        what: &str,
        timeout: Duration,
        done: impl FnMut(&Counts) -> bool,
    ) -> Counts {
        let mut counts = self.counts.subscribe();
        match tokio::time::timeout(timeout, counts.wait_for(done)).await {
            Ok(Ok(counts)) => *counts,
            Ok(Err(_)) => panic!("SMTP proxy stopped while waiting for {what}"),
            Err(_) => panic!("{what}: not within {timeout:?}; {:?}", self.counts()),
        }
    }

    /// Waits until `n` replies to the end of DATA have been held in all (see
    /// [`Mode::HoldAfterData`]): the server has accepted those messages and their senders do not
    /// know it.
    pub async fn wait_held(&self, n: u64, timeout: Duration) -> Counts {
        self.wait_until(&format!("{n} held replies"), timeout, |c| c.held >= n)
            .await
    }
}

impl Drop for SmtpProxy {
    fn drop(&mut self) {
        // Closing the control channel ends the accept loop, then the thread drops the runtime.
        self.control = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Accepts clients while the mode is not `Down` and applies mode changes, until the control channel
/// closes.
async fn serve(
    listener: TcpListener,
    upstream: SocketAddr,
    mut commands: mpsc::UnboundedReceiver<Control>,
    counts: Arc<watch::Sender<Counts>>,
) {
    let addr = listener.local_addr().unwrap();
    let mut listener = Some(listener);
    let modes = watch::Sender::new(Mode::Pass);
    loop {
        let accept = async {
            match &listener {
                Some(l) => l.accept().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            command = commands.recv() => {
                let Some((mode, done)) = command else { return };
                let result = match mode {
                    Mode::Down => {
                        listener = None;
                        Ok(())
                    }
                    Mode::Pass | Mode::HoldAfterData if listener.is_none() => {
                        rebind(addr).await.map(|l| listener = Some(l))
                    }
                    Mode::Pass | Mode::HoldAfterData => Ok(()),
                };
                // Open connections cut or release what they hold only once the listener is in
                // its new state.
                modes.send_replace(mode);
                let _ = done.send(result);
            }
            accepted = accept => {
                let Ok((client, _)) = accepted else { continue };
                counts.send_modify(|c| c.connections += 1);
                tokio::spawn(relay(client, upstream, modes.subscribe(), counts.clone()));
            }
        }
    }
}

/// Binds the relay's port again after `Down`; a port in use is retried for a few seconds.
async fn rebind(addr: SocketAddr) -> Result<TcpListener, String> {
    let mut tries = 0;
    loop {
        match TcpListener::bind(addr).await {
            Ok(l) => return Ok(l),
            Err(e) if tries == 50 => return Err(format!("bind {addr} again: {e}")),
            Err(_) => tries += 1,
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What the server's next reply answers.
#[derive(Debug)]
enum Expect {
    Greeting,
    /// A command line (or an AUTH continuation line), DATA excepted.
    Command,
    /// DATA: a 354 opens the message.
    Data,
    /// The end of the message: `.` alone on a line.
    EndOfData,
}

/// Relays one client connection to a new connection to the server, line by line, until either side
/// closes or the mode becomes `Down`.
async fn relay(
    client: TcpStream,
    upstream: SocketAddr,
    mut mode: watch::Receiver<Mode>,
    counts: Arc<watch::Sender<Counts>>,
) {
    // A server that is down: the client sees its connection closed.
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let (client_read, mut client_write) = client.into_split();
    let (server_read, mut server_write) = server.into_split();
    let (mut client_read, mut server_read) =
        (BufReader::new(client_read), BufReader::new(server_read));
    let mut expect = VecDeque::from([Expect::Greeting]);
    let mut in_data = false;
    // Kept across loop turns: read_until appends what it read before select! dropped it.
    let (mut line, mut reply_line, mut reply) = (Vec::new(), Vec::new(), Vec::new());
    loop {
        tokio::select! {
            read = client_read.read_until(b'\n', &mut line) => {
                if !matches!(read, Ok(n) if n > 0) {
                    return;
                }
                if in_data {
                    // Dot-stuffing makes a line of one dot the end of the message, and nothing else.
                    if line == b".\r\n" {
                        in_data = false;
                        expect.push_back(Expect::EndOfData);
                    }
                } else if line.len() >= 4 && line[..4].eq_ignore_ascii_case(b"DATA") {
                    expect.push_back(Expect::Data);
                } else {
                    expect.push_back(Expect::Command);
                }
                if server_write.write_all(&line).await.is_err() {
                    return;
                }
                line.clear();
            }
            read = server_read.read_until(b'\n', &mut reply_line) => {
                if !matches!(read, Ok(n) if n > 0) {
                    return;
                }
                reply.extend_from_slice(&reply_line);
                // A reply's lines are `250-...` up to its last one, `250 ...`.
                let last = reply_line.get(3) != Some(&b'-');
                let code = reply_line.first().copied();
                reply_line.clear();
                if !last {
                    continue;
                }
                match expect.pop_front() {
                    Some(Expect::Data) if reply.starts_with(b"354") => in_data = true,
                    Some(Expect::EndOfData) if code == Some(b'2') => {
                        counts.send_modify(|c| c.accepted += 1);
                        if *mode.borrow_and_update() == Mode::HoldAfterData {
                            counts.send_modify(|c| c.held += 1);
                            if !hold(&mut client_read, &mut mode).await {
                                return;
                            }
                        }
                    }
                    _ => {}
                }
                if client_write.write_all(&reply).await.is_err() {
                    return;
                }
                reply.clear();
            }
            changed = mode.changed() => {
                if changed.is_err() || *mode.borrow_and_update() == Mode::Down {
                    return;
                }
            }
        }
    }
}

/// Holds a reply: true when the mode becomes `Pass` (deliver it), false when it becomes `Down` or
/// the client goes away (cut the connection).
async fn hold(client: &mut BufReader<OwnedReadHalf>, mode: &mut watch::Receiver<Mode>) -> bool {
    let mut watch_client = true;
    loop {
        tokio::select! {
            // A client waiting for a reply sends nothing; reading tells when it is gone.
            gone = client.fill_buf(), if watch_client => match gone.map(|b| b.is_empty()) {
                Ok(false) => watch_client = false, // it did send: kept in the buffer for later
                _ => return false,
            },
            changed = mode.changed() => {
                if changed.is_err() {
                    return false;
                }
                match *mode.borrow_and_update() {
                    Mode::Pass => return true,
                    Mode::Down => return false,
                    Mode::HoldAfterData => {}
                }
            }
        }
    }
}
