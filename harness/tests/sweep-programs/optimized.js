'use strict';
const { record } = require('./oracle');
function target(x, r) {
  if (r) record();
  const y = x * 3 + 1;
  return y > 10 ? y - 10 : y;
}
function caller(i, r) {
  return target(i, r);
}
%NeverOptimizeFunction(caller);
const end = Date.now() + 120000;
let s = 0;
// Many calls per clock read (one call site, so V8's recorded stack is the
// swept call's): the sweep finds the function by sampling, and under
// qemu-x86_64 a Date.now() costs far more than a call of target.
for (let i = 0; Date.now() < end; i++) {
  for (let j = 0; j < (i === 0 ? 1 : 1000); j++) s += caller(s & 7, i === 0);
  if (i === 0) {
    %PrepareFunctionForOptimization(target);
    target(1, false);
    %OptimizeFunctionOnNextCall(target);
    target(2, false);
  }
}
