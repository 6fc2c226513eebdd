import Testing
@Test func placeholderScratchNetTests() { #expect(1 == 1) }
