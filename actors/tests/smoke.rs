//! Smoke: error, panic and kill restart a child; one more than the intensity escalates.
use std::time::Duration;

use pincer_actors::{ActorState, ChildSpec, Registry, Strategy, SupervisorSpec, testkit};
use ractor::{Actor, ActorProcessingErr, ActorRef};

struct W;
impl Actor for W {
    type Msg = u8;
    type State = ();
    type Arguments = ();
    async fn pre_start(&self, _: ActorRef<u8>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }
    async fn handle(&self, _: ActorRef<u8>, m: u8, _: &mut ()) -> Result<(), ActorProcessingErr> {
        match m {
            1 => Err("boom".into()),
            2 => panic!("kaboom"),
            _ => Ok(()),
        }
    }
}

#[tokio::test]
async fn smoke() {
    let reg = Registry::new();
    let root = SupervisorSpec::new(Strategy::OneForOne)
        .child(ChildSpec::new("a", |_| (W, ())))
        .start_root("r", &reg)
        .await
        .unwrap();
    let cell = reg.cell("r/a").unwrap();
    ractor::ActorRef::<u8>::from(cell.clone()).cast(1).unwrap();
    let rec = testkit::wait_for_restart(&reg, "r/a", &cell, Duration::from_secs(2)).await;
    assert_eq!(rec.restarts_total, 1);
    assert_eq!(rec.last_error.as_deref(), Some("boom"));
    let cell = reg.cell("r/a").unwrap();
    ractor::ActorRef::<u8>::from(cell.clone()).cast(2).unwrap();
    let rec = testkit::wait_for_restart(&reg, "r/a", &cell, Duration::from_secs(2)).await;
    assert_eq!(rec.restarts_total, 2);
    let cell = reg.cell("r/a").unwrap();
    reg.kill("r/a").unwrap();
    testkit::wait_for_restart(&reg, "r/a", &cell, Duration::from_secs(2)).await;
    // 4th restart in window exceeds default 3/5s
    let cell = reg.cell("r/a").unwrap();
    reg.kill("r/a").unwrap();
    let exit = root.wait().await;
    println!("{exit:?}");
    println!(
        "{}",
        serde_json::to_string_pretty(&reg.snapshot().tree()).unwrap()
    );
    assert!(matches!(exit, pincer_actors::RootExit::Failed(_)));
    assert_eq!(reg.get("r/a").unwrap().state, ActorState::Failed);
    let _ = cell;
}
