'use strict';
const crash = require('./oracle');
class Base {
  static create(items) { return new this(items); }
  constructor(items) { this.items = items; }
  visit(fn) { this.items.forEach(fn, this); }
}
class Derived extends Base {
  visit(fn) { return super.visit(fn); }
}
const visitor = {
  seen: 0,
  onItem(item) { if (item === 'c') crash(); this.seen++; },
};
Derived.create(['a', 'b', 'c']).visit(function (item) { visitor.onItem(item); });
