"""Hypothesis strategies and properties: a conformance kit.

Each property takes the implementation under test as an argument, so the same checks that tie
checked-rl's runtime to its spec can be pointed at a user's own GAE, loss or environment.
"""
