//! `northstar demo`, the README's first command: sample data into an empty location, a funnel
//! across the sign-up that counts one person where ids count two, then a server over the data.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use crate::support::{free_port, northstar, Process, Scratch};

/// The rows of the demo's printed table whose first cell is a step number: (persons, ids).
fn funnel_rows(text: &str) -> Vec<(u64, u64)> {
    text.lines()
        .map(|line| line.split(['│', '┆']).map(str::trim).filter(|c| !c.is_empty()).collect::<Vec<_>>())
        .filter(|cells| cells.len() == 4 && cells[0].parse::<u32>().is_ok() && cells[1] != "step_name")
        .map(|cells| (cells[2].parse().unwrap(), cells[3].parse().unwrap()))
        .collect()
}

#[test]
fn the_demo_counts_one_person_across_the_sign_up_and_serves_what_it_imported() {
    let s = Scratch::new();
    let data = s.data();
    let (pg, http) = (free_port(), free_port());
    let mut child = northstar()
        .args(["demo", "--data", &data, "--events", "60000"])
        .args(["--listen", &format!("127.0.0.1:{pg}"), "--http", &format!("127.0.0.1:{http}")])
        .env("NORTHSTAR_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _process = Process(child);
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let serving = line.starts_with("Serving");
            text.push_str(&(line + "\n"));
            if serving {
                let _ = sender.send(text.clone());
            }
        }
    });
    let printed = receiver.recv_timeout(Duration::from_secs(180)).expect("the demo did not start serving");
    let funnel = funnel_rows(&printed);
    assert_eq!(funnel.len(), 3, "the funnel app_open → signup → purchase:\n{printed}");
    // Anonymous devices: more ids than persons opened the app, and more persons than ids went
    // on to sign up (the anonymous open and the identified sign-up are one person's).
    assert!(funnel[0].0 < funnel[0].1, "{funnel:?}\n{printed}");
    assert!(funnel[1].0 > funnel[1].1, "{funnel:?}\n{printed}");

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let events: i64 = runtime.block_on(async {
        let config = format!("host=127.0.0.1 port={pg} user=northstar dbname=northstar");
        let (client, connection) = tokio_postgres::connect(&config, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(connection);
        client.query_one("SELECT count(*) FROM events", &[]).await.unwrap().get(0)
    });
    assert_eq!(events, 60_000);
}
