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
for (let i = 0; Date.now() < end; i++) {
  s += caller(s & 7, i === 0);
  if (i === 0) {
    %PrepareFunctionForOptimization(target);
    target(1, false);
    %OptimizeFunctionOnNextCall(target);
    target(2, false);
  }
}
