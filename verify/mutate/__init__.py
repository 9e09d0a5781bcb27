"""Mutation testing of impl/: does the verifier notice when impl/'s code is changed?"""
