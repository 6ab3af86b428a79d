//! The library reads no test variable: `UMD_REQUIRE_SANDBOX` is the CLI's and
//! the tests' knob, never `Policy::default()`'s. (One test in its own process:
//! it changes the environment.)

use umd::Policy;

#[test]
fn the_default_policy_ignores_umd_require_sandbox_and_follows_the_programs_choice() {
    // SAFETY (of the environment change): the only test of this binary; no other
    // thread of this process reads the environment meanwhile.
    std::env::set_var("UMD_REQUIRE_SANDBOX", "1");
    assert!(!Policy::default().require_all, "the variable is not read by the library");
    Policy::set_default_require_all(true);
    assert!(Policy::default().require_all, "the program's choice is");
    assert!(Policy::default().requiring_every_layer(false) != Policy::default(), "a policy can override it");
    Policy::set_default_require_all(false);
    std::env::remove_var("UMD_REQUIRE_SANDBOX");
    assert!(!Policy::default().require_all);
    assert!(Policy::default().requiring_every_layer(true).require_all);
}
