'use strict';
// Flags: --allow-natives-syntax
const crash = require('./oracle');
let armed = false;
function report(x) {
  if (armed) crash();
  return x;
}
%NeverOptimizeFunction(report);
function leaf(x) {
  return report(x) * 2;
}
function middle(x) {
  return leaf(x + 1) + 1;
}
function hot(x) {
  return middle(x) - 1;
}
%PrepareFunctionForOptimization(hot);
for (let i = 0; i < 1000; i++) hot(i);
%OptimizeFunctionOnNextCall(hot);
hot(1);
armed = true;
hot(2);
