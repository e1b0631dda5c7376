'use strict';
// No natives syntax: the loop runs long enough for its functions to tier
// up (Sparkplug, Maglev, TurboFan) on their own. The crash comes through a
// megamorphic call site, so it does not deoptimize the hot code first.
const crash = require('./oracle');
class Vec {
  constructor(x, y) { this.x = x; this.y = y; }
  add(o) { return new Vec(this.x + o.x, this.y + o.y); }
  len() { return Math.sqrt(this.x * this.x + this.y * this.y); }
}
const handlers = [
  (v) => v.x, (v) => v.y, (v) => v.x + 1, (v) => v.y + 1, (v) => v.x * 2, (v) => v.y * 2,
];
function step(acc, i) {
  const v = acc.add(new Vec(i & 7, 1));
  return handlers[i % 6](v) > 1e9 ? acc : v;
}
function run(n) {
  let acc = new Vec(0, 0);
  for (let i = 0; i <= n; i++) acc = step(i % 100 === 0 ? new Vec(0, 0) : acc, i);
  return acc;
}
run(2000000);
handlers[0] = function armed(v) { return crash(v); };
run(6);
