'use strict';
const crash = require('./oracle');
function makeCounter(limit) {
  let n = 0;
  const step = () => {
    n += 1;
    if (n === limit) return finish(n);
    return step();
  };
  return step;
}
const finish = (n) => {
  const inner = function named() { return crash(n); };
  return inner();
};
(function iife() {
  makeCounter(3)();
})();
