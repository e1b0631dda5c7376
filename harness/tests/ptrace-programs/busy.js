// A program that keeps running in one known place: `inner` spins for
// 20 ms at a time, called over and over from the same call site. On its
// first call it prints V8's own stack (the truth `--pid` is checked
// against); every 25 calls it prints a tick, which shows it still runs.
'use strict';
Error.stackTraceLimit = Infinity;

function inner(first) {
  if (first) {
    console.error(`CROSSWIND-ORACLE-BEGIN\n${new Error().stack}\nCROSSWIND-ORACLE-END`);
  }
  const until = Date.now() + 20;
  let spins = 0;
  while (Date.now() < until) {
    spins++;
  }
  return spins;
}

function middle() {
  for (let i = 0; ; i++) {
    inner(i === 0);
    if (i % 25 === 0) {
      console.log(`tick ${i}`);
    }
  }
}

function outer() {
  middle();
}

outer();
