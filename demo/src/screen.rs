//! How the demo shows the rows: a live table redrawn in place on a terminal, or plain lines,
//! one per change, otherwise.
//!
//! Redrawing needs two ANSI sequences (cursor up, clear to the end of the screen), which every
//! terminal understands; a terminal crate would add a dependency for nothing more.

use std::io::Write;
use std::time::{Duration, Instant};

use crate::rows::{Row, Target};

const HEADER: [&str; 7] = [
    "DATABASE (remote → local)",
    "REMOTE",
    "APPLIED",
    "LOCAL",
    "STATUS ON REMOTE",
    "CURRENT",
    "SECRET UP",
];
const WIDTHS: [usize; 6] = [11, 8, 7, 20, 8, 9];

/// The terminal.
pub struct Screen {
    live: bool,
    start: Instant,
    /// The live block: the table and a line saying what is awaited.
    block: Vec<String>,
    drawn: usize,
    last: Vec<Row>,
    name_width: usize,
}

impl Screen {
    /// A screen; `live` redraws the table in place.
    pub fn new(live: bool) -> Self {
        let (block, drawn, last) = (Vec::new(), 0, Vec::new());
        let name_width = HEADER[0].chars().count();
        Screen {
            live,
            start: Instant::now(),
            block,
            drawn,
            last,
            name_width,
        }
    }

    /// Prints a line above the live table.
    pub fn say(&mut self, line: impl AsRef<str>) {
        self.erase();
        println!("{}", line.as_ref());
        self.draw();
    }

    /// Shows the rows and what is awaited: redrawn in place, or as plain lines for the rows
    /// that changed.
    pub fn show(&mut self, targets: &[Target], rows: &[Row], waiting: &str) {
        let cells: Vec<[String; 7]> = rows.iter().zip(targets).map(|(r, t)| cells(r, t)).collect();
        let widest = cells
            .iter()
            .map(|c| c[0].chars().count())
            .max()
            .unwrap_or(0);
        self.name_width = self.name_width.max(widest);
        if self.live {
            let mut block = vec![self.line(&HEADER.map(String::from))];
            block.extend(cells.iter().map(|c| self.line(c)));
            block.push(format!("  {waiting}"));
            self.erase();
            self.block = block;
            self.draw();
        } else {
            let clock = format!("{:6.1}s", self.start.elapsed().as_secs_f64());
            if self.last.is_empty() {
                println!("  {:>7}{}", "TIME", self.line(&HEADER.map(String::from)));
            }
            for (i, c) in cells.iter().enumerate() {
                if self.last.get(i) != rows.get(i) {
                    println!("  {clock}{}", self.line(c));
                }
            }
        }
        self.last = rows.to_vec();
    }

    /// Removes the live table; later output starts where it was.
    pub fn clear(&mut self) {
        self.erase();
        self.block.clear();
    }

    /// The table as plain lines.
    pub fn table(&self, targets: &[Target], rows: &[Row]) -> Vec<String> {
        let mut out = vec![self.line(&HEADER.map(String::from))];
        out.extend(
            rows.iter()
                .zip(targets)
                .map(|(r, t)| self.line(&cells(r, t))),
        );
        out
    }

    fn line(&self, cells: &[String; 7]) -> String {
        let pad = self.name_width.saturating_sub(cells[0].chars().count());
        let mut s = format!("  {}{}", cells[0], " ".repeat(pad));
        for (c, w) in cells[1..].iter().zip(WIDTHS) {
            s.push_str(&format!("  {c:<w$}"));
        }
        s.trim_end().to_owned()
    }

    fn erase(&mut self) {
        if self.live && self.drawn > 0 {
            // Cursor up over the block, then clear to the end of the screen.
            print!("\x1b[{}A\x1b[J", self.drawn);
        }
        self.drawn = 0;
    }

    fn draw(&mut self) {
        if self.live {
            for l in &self.block {
                println!("{l}");
            }
            self.drawn = self.block.len();
        }
        let _ = std::io::stdout().flush();
    }
}

fn cells(row: &Row, t: &Target) -> [String; 7] {
    let g = |v: Option<i64>| v.map_or("-".to_owned(), |g| format!("g{g}"));
    let name = match &t.local {
        Some(l) => format!("{}/{} → {l}", t.namespace, t.name),
        None => format!("{}/{} (other region)", t.namespace, t.name),
    };
    let remote = match (row.remote_gen, row.deleting, row.paused) {
        (None, ..) => "gone".to_owned(),
        (Some(_), true, _) => "deleting".to_owned(),
        (Some(r), _, true) => format!("g{r} paused"),
        (Some(r), ..) => format!("g{r}"),
    };
    let local = match (row.local_gen, row.local_ns) {
        (Some(l), _) => format!("g{l}"),
        (None, false) if t.local.is_some() && row.remote_gen.is_none() => "gone".to_owned(),
        (None, false) if t.local.is_some() => "no ns".to_owned(),
        _ => "-".to_owned(),
    };
    let status = row
        .status
        .as_ref()
        .map_or("-".to_owned(), |s| format!("{s} ({})", g(row.observed)));
    let current = match () {
        () if row.remote_gen.is_none() || t.local.is_none() => "-",
        () if row.current() => "yes",
        () => "no",
    };
    let secret = row.secret.unwrap_or("-").to_owned();
    [
        name,
        remote,
        g(row.applied),
        local,
        status,
        current.to_owned(),
        secret,
    ]
}

/// Awaits `work`, saying every 20 s that it is still going.
pub async fn ticking<T>(s: &mut Screen, what: &str, work: impl Future<Output = T>) -> T {
    let start = Instant::now();
    let every = Duration::from_secs(20);
    let mut tick = tokio::time::interval_at((start + every).into(), every);
    tokio::pin!(work);
    loop {
        tokio::select! {
            v = &mut work => return v,
            _ = tick.tick() => {
                s.say(format!("  … still {what} ({}s)", start.elapsed().as_secs()));
            }
        }
    }
}
