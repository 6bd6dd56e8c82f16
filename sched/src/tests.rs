use super::*;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn config(seed: u64) -> SimulationConfig {
    SimulationConfig {
        seed,
        switch_chance: 0.5,
        max_steps: 100_000,
        record: true,
        no_switch: Default::default(),
    }
}

/// Four tasks each add 1 to a counter 50 times as load, scheduling point, store: the
/// lost updates depend on the interleaving only.
fn racy_counter(seed: u64, locked: bool) -> (u64, ScheduleLog) {
    simulate(&config(seed), move || {
        let runtime = Runtime::simulated(seed);
        let counter = Arc::new(AtomicU64::new(0));
        let lock = Arc::new(runtime.mutex(()));
        let handles: Vec<_> = (0..4)
            .map(|task| {
                let counter = Arc::clone(&counter);
                let lock = Arc::clone(&lock);
                let runtime = runtime.clone();
                runtime
                    .clone()
                    .spawn(&format!("adder-{task}"), move || {
                        for _ in 0..50 {
                            let _held = locked.then(|| lock.lock());
                            let seen = counter.load(Ordering::SeqCst);
                            runtime.yield_point();
                            counter.store(seen + 1, Ordering::SeqCst);
                        }
                    })
                    .expect("spawn")
            })
            .collect();
        for handle in handles {
            handle.join().expect("no panic");
        }
        counter.load(Ordering::SeqCst)
    })
    .expect("the simulation finishes")
}

#[test]
fn same_seed_same_schedule_and_seeds_differ() {
    let (first, log_a) = racy_counter(7, false);
    let (second, log_b) = racy_counter(7, false);
    assert_eq!(first, second);
    assert_eq!(log_a, log_b);
    let hashes: std::collections::BTreeSet<u64> = (0..8)
        .map(|seed| racy_counter(seed, false).1.hash)
        .collect();
    assert!(hashes.len() > 1, "different seeds schedule differently");
}

#[test]
fn the_scheduler_interleaves_and_the_mutex_excludes() {
    // Without the lock some seed loses an update: the scheduler really preempts at
    // scheduling points. With it, none does.
    assert!((0..8).any(|seed| racy_counter(seed, false).0 < 200));
    for seed in 0..8 {
        assert_eq!(racy_counter(seed, true).0, 200, "seed {seed}");
    }
}

#[test]
fn a_lost_wakeup_is_reported_as_a_deadlock() {
    let failure = simulate(&config(1), || {
        let runtime = Runtime::simulated(1);
        let mutex = runtime.mutex(false);
        let condvar = runtime.condvar();
        let guard = mutex.lock();
        // Nobody will ever notify.
        let _guard = condvar.wait(guard);
    })
    .expect_err("a wait nobody ends is a deadlock");
    assert!(failure.message.contains("deadlock"), "{}", failure.message);
}

#[test]
fn a_panicking_task_fails_the_simulation_with_its_message() {
    let failure = simulate(&config(2), || {
        let runtime = Runtime::simulated(2);
        let handle = runtime
            .spawn("broken", || panic!("invariant broken here"))
            .expect("spawn");
        let _ = handle.join();
    })
    .expect_err("a panic fails the run");
    assert!(
        failure.message.contains("invariant broken here"),
        "{}",
        failure.message
    );
}

#[test]
fn timed_waits_time_out_on_simulated_time_and_notifications_end_them() {
    for seed in 0..20 {
        let (timed_out, now) = simulate(&config(seed), move || {
            let runtime = Runtime::simulated(seed);
            let mutex = runtime.mutex(());
            let condvar = runtime.condvar();
            let (_guard, timed_out) = condvar.wait_timeout(mutex.lock(), Duration::from_millis(50));
            (timed_out, runtime.now())
        })
        .expect("finishes")
        .0;
        // Alone, nobody notifies: it always times out, exactly at its deadline.
        assert!(timed_out);
        assert_eq!(now, Duration::from_millis(50));
    }
    // With a notifier, some seeds see the notification in time and do not move the clock.
    let early = (0..40).filter(|&seed| {
        simulate(&config(seed), move || {
            let runtime = Runtime::simulated(seed);
            let shared = Arc::new((runtime.mutex(false), runtime.condvar()));
            let notifier = Arc::clone(&shared);
            let handle = runtime
                .spawn("notifier", move || {
                    *notifier.0.lock() = true;
                    notifier.1.notify_all();
                })
                .expect("spawn");
            let (guard, timed_out) = shared
                .1
                .wait_timeout(shared.0.lock(), Duration::from_millis(1));
            let notified = *guard;
            drop(guard);
            handle.join().expect("no panic");
            !timed_out && notified && runtime.now() == Duration::ZERO
        })
        .expect("finishes")
        .0
    });
    assert!(early.count() > 0);
}

#[test]
fn sleep_moves_the_simulated_clock_only() {
    let ((), _) = simulate(&config(3), || {
        let runtime = Runtime::simulated(3);
        runtime.sleep(Duration::from_secs(3600));
        assert_eq!(runtime.now(), Duration::from_secs(3600));
    })
    .expect("an hour of simulated sleep takes no real time");
}

#[test]
fn the_os_runtime_runs_real_threads() {
    let runtime = Runtime::os();
    let shared = Arc::new((runtime.mutex(0u64), runtime.condvar()));
    let worker = Arc::clone(&shared);
    let handle = runtime
        .spawn("worker", move || {
            *worker.0.lock() += 1;
            worker.1.notify_all();
        })
        .expect("spawn");
    let mut guard = shared.0.lock();
    while *guard == 0 {
        guard = shared.1.wait_timeout(guard, Duration::from_millis(10)).0;
    }
    drop(guard);
    handle.join().expect("no panic");
    let (_guard, timed_out) = shared
        .1
        .wait_timeout(shared.0.lock(), Duration::from_millis(1));
    assert!(timed_out);
    assert!(runtime.now() >= Duration::from_millis(1));
}

#[test]
fn os_notifications_reach_waiters_and_skip_only_when_none_waits() {
    // Two threads hand a token back and forth, each waiting for its turn: every handoff
    // needs the notification to reach a thread that is (or is about to be) waiting. A
    // notification skipped while someone waits would show as a wait that times out.
    let runtime = Runtime::os();
    let shared = Arc::new((runtime.mutex(0u64), runtime.condvar()));
    let rounds = 500;
    let take_turns = |shared: Arc<(Mutex<u64>, Condvar)>, parity: u64, one: bool| {
        move || {
            for _ in 0..rounds {
                let mut turn = shared.0.lock();
                while *turn % 2 != parity {
                    let (guard, timed_out) = shared.1.wait_timeout(turn, Duration::from_secs(20));
                    assert!(!timed_out, "a notification was lost");
                    turn = guard;
                }
                *turn += 1;
                drop(turn);
                if one {
                    shared.1.notify_one();
                } else {
                    shared.1.notify_all();
                }
            }
        }
    };
    let other = runtime
        .spawn("odd", take_turns(Arc::clone(&shared), 1, true))
        .expect("spawn");
    take_turns(Arc::clone(&shared), 0, false)();
    other.join().expect("no lost notification");
    assert_eq!(*shared.0.lock(), 2 * rounds);
    // Nobody waits now: notifying is a no-op, and a later waiter still times out.
    shared.1.notify_all();
    let (_guard, timed_out) = shared
        .1
        .wait_timeout(shared.0.lock(), Duration::from_millis(1));
    assert!(timed_out);
}

#[test]
fn an_armed_action_runs_at_its_scheduling_point_and_only_once() {
    let ((), _) = simulate(&config(5), || {
        let runtime = Runtime::simulated(5);
        let clock = Arc::clone(runtime.clock().expect("simulated"));
        let fired = Arc::new(AtomicU64::new(0));
        let seen = Arc::clone(&fired);
        let at_arming = clock.points();
        clock.arm(
            3,
            Box::new(move || {
                seen.fetch_add(1, Ordering::SeqCst);
            }),
        );
        let mutex = runtime.mutex(());
        drop(mutex.lock()); // point 1
        runtime.yield_point(); // point 2
        assert_eq!(fired.load(Ordering::SeqCst), 0);
        runtime.yield_point(); // point 3: fires
        assert_eq!(fired.load(Ordering::SeqCst), 1);
        assert_eq!(clock.points(), at_arming + 3);
        assert!(!clock.is_armed());
        runtime.yield_point();
        assert_eq!(fired.load(Ordering::SeqCst), 1, "once");
    })
    .expect("finishes");
}
