//! A classic secondary sort through the in-memory runner: readings `station,year,temp`, keyed by
//! `(station, temp)` and grouped by station, so each station's reduce call gets its temperatures
//! in ascending order, whichever partition and map order they came in.

use quern_sdk::local::run_job;
use quern_sdk::{Emitter, GroupReducer, JobDef, JobError, Mapper, Output, Reducer};
use std::collections::BTreeMap;

struct Readings;

impl Mapper for Readings {
    type Key = (String, i32);
    type Value = i32;
    fn map(
        &self,
        _: u64,
        line: &[u8],
        out: &mut Emitter<'_, (String, i32), i32>,
    ) -> Result<(), JobError> {
        let (station, temp) = parse(line)?;
        // Borrowed parts: the station is not copied into a String to emit it.
        out.emit_parts((station, temp), &temp)
    }
}

fn parse(line: &[u8]) -> Result<(&str, i32), JobError> {
    let line = std::str::from_utf8(line).map_err(|e| JobError::user(e.to_string()))?;
    let mut fields = line.split(',');
    let (Some(station), Some(_year), Some(temp)) = (fields.next(), fields.next(), fields.next())
    else {
        return Err(JobError::user(format!("not station,year,temp: {line}")));
    };
    let temp = temp
        .parse()
        .map_err(|_| JobError::user(format!("bad temp: {line}")))?;
    Ok((station, temp))
}

fn joined(temps: impl Iterator<Item = i32>) -> String {
    temps.map(|t| t.to_string()).collect::<Vec<_>>().join(",")
}

/// Sees each record's key: writes the station once, then its temperatures, from the keys.
struct AscendingFromKeys;

impl GroupReducer for AscendingFromKeys {
    type Key = (String, i32);
    type Value = i32;
    type OutKey = str;
    type OutValue = str;
    fn reduce(
        &self,
        first: (String, i32),
        records: &mut dyn Iterator<Item = ((String, i32), i32)>,
        out: &mut Output<'_, str, str>,
    ) -> Result<(), JobError> {
        let mut temps = Vec::new();
        for ((station, temp), value) in records {
            assert_eq!(station, first.0, "one station per group");
            assert_eq!(temp, value);
            temps.push(temp);
        }
        out.write(&first.0, &joined(temps.into_iter()));
        Ok(())
    }
}

/// A plain reducer in a grouped job: the group's first key, and the values in key order.
struct AscendingValues;

impl Reducer for AscendingValues {
    type Key = (String, i32);
    type Value = i32;
    type OutKey = str;
    type OutValue = str;
    fn reduce(
        &self,
        key: (String, i32),
        values: &mut dyn Iterator<Item = i32>,
        out: &mut Output<'_, str, str>,
    ) -> Result<(), JobError> {
        out.write(&key.0, &joined(values));
        Ok(())
    }
}

/// Readings in no order: stations that prefix one another, negative and repeated temperatures.
fn readings() -> String {
    let stations = ["a", "ab", "abc", "b", "Zürich", ""];
    let mut lines = String::new();
    for i in 0..240i32 {
        let station = stations[(i * 7 % 6) as usize];
        let temp = (i * 37 % 61) - 30;
        lines.push_str(&format!("{station},{},{temp}\n", 1950 + i % 40));
    }
    lines
}

/// What the job must write, worked out here without the SDK: per station, sorted temperatures.
fn expected(input: &str) -> BTreeMap<String, String> {
    let mut temps: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for line in input.lines() {
        let fields: Vec<&str> = line.split(',').collect();
        temps
            .entry(fields[0].to_string())
            .or_default()
            .push(fields[2].parse().unwrap());
    }
    temps
        .into_iter()
        .map(|(station, mut t)| {
            t.sort();
            (station, joined(t.into_iter()))
        })
        .collect()
}

/// Every output line of every part, as station → temperatures; a station in two lines fails.
fn lines_by_station(parts: Vec<Vec<u8>>) -> BTreeMap<String, String> {
    let mut got = BTreeMap::new();
    for part in parts {
        for line in String::from_utf8(part).unwrap().lines() {
            let (station, temps) = line.split_once('\t').unwrap();
            let again = got.insert(station.to_string(), temps.to_string());
            assert!(again.is_none(), "station {station:?} in two groups");
        }
    }
    got
}

#[test]
fn a_group_reducer_gets_each_station_once_with_its_temperatures_ascending() {
    let input = readings();
    let job = JobDef::with_group_reducer("temps", Readings, AscendingFromKeys).group_by_first();
    for partitions in [1, 3] {
        let parts = run_job(&job, input.as_bytes(), partitions).unwrap();
        assert_eq!(
            lines_by_station(parts),
            expected(&input),
            "{partitions} partitions"
        );
    }
}

#[test]
fn a_plain_reducer_in_a_grouped_job_gets_the_values_in_key_order() {
    let input = readings();
    let job = JobDef::new("temps", Readings, AscendingValues).group_by_first();
    let parts = run_job(&job, input.as_bytes(), 4).unwrap();
    assert_eq!(lines_by_station(parts), expected(&input));
}

#[test]
fn without_grouping_each_key_is_its_own_group() {
    let job = JobDef::new("temps", Readings, AscendingValues);
    let parts = run_job(&job, b"x,1990,5\nx,1991,-2\nx,1992,5\n", 1).unwrap();
    assert_eq!(parts, [b"x\t-2\nx\t5,5\n".to_vec()]);
}
